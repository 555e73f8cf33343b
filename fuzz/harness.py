"""Run one target of fuzz/targets.py under atheris (libFuzzer) for a fixed time.

    python fuzz/harness.py TARGET [libFuzzer flags, e.g. -max_total_time=60 corpus/]

`make fuzz` runs every target for FUZZ_SECONDS and prints libFuzzer's figures
(executions, crashes). A crash leaves crash-<sha1> with the input in the current
directory.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["knarr"]):
    import targets  # noqa: E402


def _tar_input(data: bytes) -> None:
    """The layer target gets a structured tar built from the bytes: hostile entries, not
    noise that tarfile refuses at the first header."""
    fdp = atheris.FuzzedDataProvider(data)
    names = ["a", "b", "a/b", "../x", "../../canary", "/abs", "a/../../x", "l", "l/x",
             "l/../x", ".wh.a", ".wh..wh..opq", "d/", "./a", "a//b", "\u00e9", ""]
    links = ["/", "..", "../..", "../../canary", "a", "l", "/etc/passwd", "l/x", ""]
    entries = []
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        name = fdp.PickValueInList(names) if fdp.ConsumeBool() else fdp.ConsumeUnicode(12)
        link = fdp.PickValueInList(links) if fdp.ConsumeBool() else fdp.ConsumeUnicode(12)
        entries.append((fdp.ConsumeIntInRange(0, 7), name, link, fdp.ConsumeBytes(64)))
    try:
        blob = targets.tar_of(entries)
    except (ValueError, UnicodeError):
        return  # tarfile cannot even write such a header
    targets.layer_tar(blob)


def main() -> None:
    name = sys.argv[1]
    target = _tar_input if name == "layer_tar" else targets.TARGETS[name]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
