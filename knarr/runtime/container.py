"""Looking up a container: its record, its cgroup, and its status from the kernel."""

import os
import time

from knarr.errors import FailedPrecondition, KnarrError
from knarr.runtime import cgroups, signals, state

__all__ = ["Container", "load"]


class Container:
    """One container under a state root, as the kernel sees it now."""

    def __init__(self, root: str, record: dict, cgroup: cgroups.Cgroup | None = None) -> None:
        self.root = root
        self.record = record
        self.id = record["id"]
        self.cgroup = cgroup or cgroups.open_cgroup(record.get("cgroups_path"), self.id)

    @property
    def pid(self) -> int:
        return self.record["pid"]

    def status(self) -> str:
        """created, running, paused or stopped, worked out from the kernel (the
        freezer is read only when init runs: it tells running from paused)."""
        status = state.status_of(self.root, self.record)
        if status == state.Status.RUNNING and self._frozen():
            return state.Status.PAUSED
        return status

    def _frozen(self) -> bool:
        if not self.cgroup.exists():
            return False
        try:
            return self.cgroup.is_frozen()
        except (OSError, KnarrError):  # the cgroup went away between the two reads
            return False

    def oci_state(self) -> dict:
        """The OCI state document."""
        return state.oci_state(self.record, self.status())

    def refuse(self, action: str, status: str) -> FailedPrecondition:
        """The error for an action the container's status does not allow."""
        return FailedPrecondition(f"cannot {action} container {self.id}: it is {status}",
                                  id=self.id, status=status)

    def signal(self, sig: int, all_processes: bool = False) -> None:
        """Send `sig` to init (or every process in the cgroup)."""
        if all_processes:
            for pid in self.cgroup.pids():
                _kill_quietly(pid, sig)
            return
        from knarr import sys as ksys

        try:
            fd = ksys.pidfd_open(self.pid)
        except OSError:
            _kill_quietly(self.pid, sig)
            return
        try:
            ksys.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)

    def wait_stopped(self, timeout: float = 10.0) -> bool:
        """Wait until init is gone (reaping it if it is our child)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if state.process_start_time(self.pid) != self.record.get("start_time"):
                return True
            time.sleep(0.002)
        return False

    def kill_all(self) -> None:
        """SIGKILL every process of the container and wait for them to go."""
        if self.cgroup.exists() and self.status() == state.Status.PAUSED:
            for pid in self.cgroup.pids():
                _kill_quietly(pid, signals.SIGKILL)
            self.cgroup.thaw()
        self.signal(signals.SIGKILL)
        if self.cgroup.exists():
            for pid in self.cgroup.pids():
                _kill_quietly(pid, signals.SIGKILL)
        self.wait_stopped()


def _kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def load(root: str, container_id: str) -> Container:
    """The container with this id under `root`; NotFound if none."""
    return Container(root, state.load(root, container_id))
