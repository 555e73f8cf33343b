"""runtime_run: one `run` of a hello bundle by each OCI runtime, start to exit.

The bundle is a busybox-static rootfs (scripts/busybox-bundle) running
/bin/true, with no terminal. Each runtime keeps its state in its own --root,
and every run uses a fresh container id; `run` creates, starts, waits and
deletes, so a successful run leaves nothing behind.

With KNARR_BENCH_BASELINE=DIR (a checkout of another knarr revision), one more
subject, knarr@baseline: a launcher on this venv's knarr-runtime's interpreter
(the same shebang line) running DIR's knarr package by plain imports (no code
bundle: revisions before session 4 have none).
"""

from __future__ import annotations

import os
from pathlib import Path

from benchkit import cgroups
from benchkit.host import VENV_BIN, make_busybox_bundle
from benchkit.registry import Goal, register
from benchkit.subjects import KNARR, PEER, Subject, missing_program, program_version

KNARR_RUNTIME = VENV_BIN / "knarr-runtime"


def runtime_subject(name: str, program: str, role: str, bundle: Path, root: Path) -> Subject:
    """A runc-compatible runtime running `bundle` with its state under `root`."""
    root.mkdir(parents=True, exist_ok=True)

    def leftovers() -> list[str]:
        return sorted(p.name for p in root.iterdir() if p.is_dir())

    return Subject(
        name=name,
        role=role,
        argv=lambda run_id: [program, "--root", str(root), "run", "--bundle", str(bundle), run_id],
        cleanup=lambda run_id: [program, "--root", str(root), "delete", "-f", run_id],
        tidy=cgroups.remove_named,
        leftovers=leftovers,
        version=program_version(program),
        unavailable=missing_program(program),
        notes={"root": str(root)},
    )


@register(
    "runtime_run",
    summary="wall time of `RUNTIME --root R run --bundle B ID`, busybox /bin/true, no terminal",
    goals=(Goal(knarr="knarr-runtime", peer="crun", max_ratio=2.0),),
)
def runtime_run(workdir: Path) -> list[Subject]:
    """crun and runc as peers, knarr-runtime as knarr, all on one hello bundle."""
    bundle = make_busybox_bundle(workdir / "bundle", ["/bin/true"])
    roots = workdir / "roots"
    subjects = [
        runtime_subject("crun", "crun", PEER, bundle, roots / "crun"),
        runtime_subject("runc", "runc", PEER, bundle, roots / "runc"),
        runtime_subject("knarr-runtime", str(KNARR_RUNTIME), KNARR, bundle,
                        roots / "knarr-runtime"),
    ]
    baseline = os.environ.get("KNARR_BENCH_BASELINE")
    if baseline:
        launcher = workdir / "knarr-runtime-baseline"
        launcher.write_text(f"{_shebang(KNARR_RUNTIME)}\nimport sys\n"
                            f"sys.path.insert(0, {baseline!r})\n"
                            "from knarr.runtime_cli.main import entry\nentry()\n")
        launcher.chmod(0o755)
        subjects.append(runtime_subject("knarr@baseline", str(launcher), PEER, bundle,
                                        roots / "knarr-runtime-baseline"))
    return subjects


def _shebang(launcher: Path) -> str:
    """The first line of `launcher` (scripts/install-launchers writes it), or this
    venv's interpreter with -IS when it has none."""
    try:
        with open(launcher, "rb") as f:
            line = f.readline().decode().rstrip("\n")
    except OSError:
        line = ""
    return line if line.startswith("#!") else f"#!{VENV_BIN / 'python'} -IS"
