"""What keeps a monitor small: the fork helper's state before it forks monitors (no
at-fork hooks in Python, its C heap trimmed) and the monitor's own reads (no io objects)."""

import os
import subprocess
import sys

from knarr.engine import monitor_io

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(monitor_io.__file__))))


def test_read_state_of_a_missing_or_torn_file_is_none(tmp_path):
    assert monitor_io.read_state(str(tmp_path / "missing")) is None
    (tmp_path / "torn").write_bytes(b'{"Status": "run')
    assert monitor_io.read_state(str(tmp_path / "torn")) is None
    monitor_io.write_state(str(tmp_path / "s"), {"Status": "running", "Pid": 7})
    assert monitor_io.read_state(str(tmp_path / "s")) == {"Status": "running", "Pid": 7}


def test_the_helpers_preload_leaves_no_python_at_fork_hook():
    # random's at-fork hook (a reseed in Python) would run in every monitor the helper
    # forks and dirty pages it otherwise shares; tempfile is what would import it
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from knarr.engine import forkhelper; "
            "forkhelper._preload(); from knarr import sys as ksys; ksys.malloc_trim(); "
            "print(sorted(m for m in ('random', 'tempfile', 'threading', 'logging') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, _REPO], capture_output=True,
                         text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
