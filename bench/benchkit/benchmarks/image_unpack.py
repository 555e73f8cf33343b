"""image_unpack: unpack the ~350 MB, ~8,000-entry test image into a fresh place.

The two gzip layers of image_data.py (the interpreter's standard library, a
100 MB random file) are unpacked bottom first:

- knarr: `knarr_unpack.py ROOT LAYER DIFF_ID ...`, i.e. `unpack_layer` into a
  fresh snapshot store per run (decompress, hash the diff_id, extract safely,
  make the layer durable, commit it under its chain id);
- tar -xzf: `tar -xzf` of each layer into a fresh directory;
- tar -xzf + sync: the same followed by `sync`, for what durability costs
  (knarr's layers are on disk when it returns; tar's are in the page cache).

Every run gets a fresh directory; dirty pages are flushed before its clock
starts, and earlier runs are kept until the end (image_data.fresh_dir says
why: about 1 GB per round on disk). Use few iterations: `bench/run.py image_unpack -n 3 -w 1`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchkit.benchmarks import image_data
from benchkit.host import REPO, VENV_BIN
from benchkit.registry import Goal, register
from benchkit.subjects import KNARR, PEER, Subject, missing_program, program_version

HELPER = Path(__file__).resolve().parent / "knarr_unpack.py"


def tar_subject(name: str, layers: list[Path], base: Path, sync: bool) -> Subject:
    """tar -xzf of every layer, in order, into a fresh directory."""
    def argv(run_id: str) -> list[str]:
        target = image_data.fresh_dir(base, run_id)
        script = f"mkdir -p {target}" + "".join(f" && tar -xzf {p} -C {target}" for p in layers)
        return ["sh", "-c", script + (" && sync" if sync else "")]

    return Subject(name=name, role=PEER, argv=argv, version=program_version("tar"),
                   unavailable=missing_program("tar"))


def knarr_subject(layers: list[tuple[Path, str]], base: Path,
                  source: str | None = None) -> Subject:
    """knarr's unpack of every layer into a fresh snapshot store (with the knarr package
    found in `source` rather than this checkout, when given)."""
    def argv(run_id: str) -> list[str]:
        root = image_data.fresh_dir(base, run_id)
        pairs = [str(x) for p, d in layers for x in (p, d)]
        command = [str(VENV_BIN / "python"), str(HELPER), str(root), *pairs]
        return ["env", f"PYTHONPATH={source}", *command] if source else command

    return Subject(name="knarr@baseline" if source else "knarr", role=KNARR, argv=argv,
                   version=f"python {sys.version.split()[0]}",
                   notes={"helper": str(HELPER.relative_to(REPO)), "source": source or str(REPO)})


@register(
    "image_unpack",
    summary="unpack a ~350 MB, ~8,000-entry image (2 gzip layers) into a fresh store",
    goals=(Goal(knarr="knarr", peer="tar -xzf", max_ratio=1.3),),
)
def image_unpack(workdir: Path) -> list[Subject]:
    """tar -xzf (with and without sync) as peers, knarr's unpack as knarr."""
    cache, meta = image_data.ensure_image()
    layers = [(cache / layer["file"], layer["diff_id"]) for layer in meta["layers"]]
    files = [p for p, _ in layers]
    return [
        tar_subject("tar -xzf", files, workdir / "tar", sync=False),
        tar_subject("tar -xzf + sync", files, workdir / "tar-sync", sync=True),
        knarr_subject(layers, workdir / "knarr"),
    ] + ([knarr_subject(layers, workdir / "baseline", image_data.BASELINE)]
         if image_data.BASELINE else [])
