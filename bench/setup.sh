#!/usr/bin/env bash
# Prepare this host so the peer runtimes the benchmarks compare against can run.
# Idempotent: running it twice changes nothing the second time. Needs root.
#
#   bench/setup.sh            # do it
#   bench/setup.sh --check    # only report, change nothing; exit 1 if not ready
#
# 1. hugetlb off cgroup2. On a hybrid cgroup host (v1 controllers plus a v2
#    hierarchy at /sys/fs/cgroup/unified) crun refuses to start while any
#    controller sits on cgroup2 ("cgroups in hybrid mode not supported, drop all
#    controllers from cgroupv2"). hugetlb is the one left there on this kind of
#    host; mounting a v1 hierarchy for it moves it off cgroup2, which the kernel
#    allows only while no cgroup2 group has it enabled.
# 2. podman's default rlimits. With no default_ulimits configured, podman asks
#    for RLIMIT_NOFILE=1048576 for root, above this host's hard limit, and root
#    here lacks CAP_SYS_RESOURCE to raise a hard limit, so every `podman run`
#    fails ("setrlimit `RLIMIT_NOFILE`: Operation not permitted"). An explicit
#    empty `default_ulimits = []` in [containers] makes containers inherit the
#    limits podman runs with. We write it into /etc/containers/containers.conf,
#    keeping whatever else the file already says; an earlier default_ulimits is
#    left in the file commented out. (Explicit values can work too, but podman
#    runs with a lower RLIMIT_NPROC than the shell, 32768 here against the
#    shell's 96364, so values read from `ulimit -H` fail; the empty list does
#    not depend on such details.)
set -uo pipefail

check_only=0
[ "${1:-}" = "--check" ] && check_only=1
status=0
CONF=${KNARR_BENCH_CONTAINERS_CONF:-/etc/containers/containers.conf}

say() { echo "bench/setup: $*" >&2; }

hugetlb_on_v1() {
  # field 9 of mountinfo is the fs type, the super options are the last field
  awk '$9 == "cgroup" && $NF ~ /(^|,)hugetlb(,|$)/ { found = 1 } END { exit !found }' \
    /proc/self/mountinfo
}

cgroup2_root() {
  awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo
}

hugetlb_on_v2() {
  local root
  root=$(cgroup2_root)
  [ -n "$root" ] && grep -qw hugetlb "$root/cgroup.controllers" 2>/dev/null
}

is_hybrid() {
  # a pure cgroup2 host mounts cgroup2 at /sys/fs/cgroup and has no v1 hierarchies
  awk '$9 == "cgroup" { found = 1 } END { exit !found }' /proc/self/mountinfo
}

setup_hugetlb() {
  if ! is_hybrid; then
    say "cgroups: not a hybrid v1/v2 host, nothing to move"
    return 0
  fi
  if hugetlb_on_v1; then
    say "cgroups: hugetlb already on its own v1 hierarchy"
    return 0
  fi
  if ! grep -qw hugetlb /proc/cgroups; then
    say "cgroups: kernel has no hugetlb controller, nothing to move"
    return 0
  fi
  if [ $check_only = 1 ]; then
    say "cgroups: hugetlb is not on a v1 hierarchy (crun will refuse to run)"
    return 1
  fi
  mkdir -p /sys/fs/cgroup/hugetlb || return 1
  local err
  if ! err=$(mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>&1); then
    if hugetlb_on_v2; then
      say "cgroups: cannot move hugetlb off cgroup2 at $(cgroup2_root): it is bound to" \
          "cgroup2 and in use there (a cgroup2 group enables it in cgroup.subtree_control);" \
          "crun and runc will refuse to run until it is released: $err"
    else
      say "cgroups: mount hugetlb on /sys/fs/cgroup/hugetlb: $err"
    fi
    return 1
  fi
  say "cgroups: mounted hugetlb on /sys/fs/cgroup/hugetlb (moved off cgroup2)"
}

setup_podman_ulimits() {
  if ! command -v podman >/dev/null; then
    say "podman: not installed, skipping containers.conf"
    return 0
  fi
  python3 - "$CONF" "$check_only" <<'PY'
import os
import re
import sys
import tempfile

path, check_only = sys.argv[1], sys.argv[2] == "1"
MARK = "# set by knarr bench/setup.sh: podman's default rlimits exceed this host's hard limits"
wanted = "default_ulimits = []"
try:
    with open(path) as f:
        lines = f.read().splitlines()
except FileNotFoundError:
    lines = []


def section_bounds(lines):
    """Return (start, end) of the [containers] table's body, or None."""
    start = None
    for i, line in enumerate(lines):
        header = re.match(r"\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if header and start is not None:
            return start, i
        if header and header.group(1).strip() == "containers":
            start = i + 1
    return (start, len(lines)) if start is not None else None


def key_span(lines, start, end):
    """Return (first, last+1) of the default_ulimits assignment, which may span lines."""
    for i in range(start, end):
        if re.match(r"\s*default_ulimits\s*=", lines[i]):
            j = i
            depth = lines[i].split("#")[0].count("[") - lines[i].split("#")[0].count("]")
            while depth > 0 and j + 1 < end:
                j += 1
                code = lines[j].split("#")[0]
                depth += code.count("[") - code.count("]")
            return i, j + 1
    return None


def is_empty_list(text):
    """Whether a default_ulimits assignment is the empty list, comments aside."""
    code = " ".join(line.split("#")[0] for line in text.splitlines())
    return re.fullmatch(r"\s*default_ulimits\s*=\s*\[\s*\]\s*", code) is not None


bounds = section_bounds(lines)
span = key_span(lines, *bounds) if bounds else None
if span and is_empty_list("\n".join(lines[span[0]:span[1]])):
    print(f"bench/setup: podman: {path} already sets {wanted}", file=sys.stderr)
    sys.exit(0)
if check_only:
    print(f"bench/setup: podman: {path} does not set {wanted}", file=sys.stderr)
    sys.exit(1)
if span:
    start, stop = span
    if start > 0 and lines[start - 1] == MARK:
        start -= 1
    # keep the old setting visible, commented out, rather than losing it
    old = [f"# was: {line}" for line in lines[start:stop] if line != MARK]
    lines[start:stop] = old + [MARK, wanted]
elif bounds:
    lines[bounds[0]:bounds[0]] = [MARK, wanted]
else:
    if lines and lines[-1].strip():
        lines.append("")
    lines += ["[containers]", MARK, wanted]
os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".containers.conf.")
with os.fdopen(fd, "w") as f:
    f.write("\n".join(lines) + "\n")
    f.flush()
    os.fsync(f.fileno())
if os.path.exists(path):
    os.chmod(tmp, os.stat(path).st_mode & 0o7777)
else:
    os.chmod(tmp, 0o644)
os.rename(tmp, path)
print(f"bench/setup: podman: wrote {wanted} to [containers] in {path}", file=sys.stderr)
PY
}

if [ "$(id -u)" != 0 ]; then
  say "must run as root"
  exit 1
fi
setup_hugetlb || status=1
setup_podman_ulimits || status=1
exit $status
