"""Waiting for processes that are not our children until they are reparented to us."""

import os

from knarr import sys as ksys

__all__ = ["become_subreaper", "wait_exit_status", "exit_status_of"]


def become_subreaper() -> None:
    """Orphaned descendants (a container's init after stage1 exits) become our children."""
    ksys.set_child_subreaper()


def exit_status_of(wait_status: int) -> int:
    """A shell-style exit status: the code, or 128 + the signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def wait_exit_status(pid: int) -> int:
    """Wait for `pid` (a child or reparented descendant); reap others met on the way."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if got == pid:
            return exit_status_of(status)
