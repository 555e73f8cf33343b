"""engine_run: one `run --rm` through a container engine, start to exit.

There is no registry on the bench host, so the peer runs a rootfs directory
rather than an image: `podman run --rm --rootfs DIR /bin/true` (podman's
default runtime, network and storage). knarr has no engine command yet; its
subject is listed as pending until one exists, at which point it belongs
here, and `docker run --rm hello-world` beside it when a docker daemon and an
image source are available.
"""

from __future__ import annotations

from pathlib import Path

from benchkit.host import make_busybox_bundle
from benchkit.registry import register
from benchkit.subjects import KNARR, PEER, Subject, missing_program, program_version


def podman_subject(rootfs: Path) -> Subject:
    """podman running the busybox rootfs directory, removed when it exits."""
    return Subject(
        name="podman",
        role=PEER,
        argv=lambda run_id: ["podman", "run", "--rm", "--name", run_id,
                             "--rootfs", str(rootfs), "/bin/true"],
        cleanup=lambda run_id: ["podman", "rm", "-f", "--ignore", run_id],
        version=program_version("podman"),
        unavailable=missing_program("podman"),
        notes={"source": "--rootfs (no image registry on the bench host)"},
    )


def knarr_engine_subject() -> Subject:
    """The knarr side, which has no engine command to run yet."""
    return Subject(
        name="knarr",
        role=KNARR,
        argv=lambda run_id: [],
        pending="knarr has no engine `run` command yet",
    )


@register(
    "engine_run",
    summary="wall time of `ENGINE run --rm` of a busybox rootfs running /bin/true",
)
def engine_run(workdir: Path) -> list[Subject]:
    """podman as the peer; knarr's engine once it exists."""
    # podman writes into a --rootfs directory (/etc/hosts, /run), so it gets its own
    rootfs = make_busybox_bundle(workdir / "podman-bundle", ["/bin/true"]) / "rootfs"
    return [podman_subject(rootfs), knarr_engine_subject()]
