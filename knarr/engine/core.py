"""The engine: the daemon's core, owning the disk layout and wiring the rest together.

Persistent state under `root`: `containers.db` (the index), and per container
`containers/<id>/` (config.v2.json, state.json written by its monitor,
hostname, hosts, resolv.conf, the json-file log). Run-time state under
`exec_root`: `containers/<id>/` (the OCI bundle, the mounted rootfs, the
monitor's socket) and `runtime/` (the OCI runtime's own state).
"""

import asyncio
import concurrent.futures
import json
import logging
import os
import shutil
import socket

from knarr.engine import events, hostdevices, jsonlog, monitor_io, names, oci_config, records
from knarr.engine.archives import ArchivesMixin
from knarr.engine.building import BuildMixin
from knarr.engine.containers import ContainersMixin
from knarr.engine.execs import ExecMixin
from knarr.engine.filesystems import FilesystemsMixin
from knarr.engine.imageverbs import ImagesMixin
from knarr.engine.lifecycle import LifecycleMixin
from knarr.engine.netattach import NetAttachMixin
from knarr.engine.networks import NetworksMixin
from knarr.engine.observe import ObserveMixin
from knarr.engine.pulls import RegistryMixin
from knarr.engine.volumeverbs import VolumesMixin
from knarr.errors import Conflict, KnarrError, NotFound
from knarr.images import ImageStore, builtin
from knarr.volumes import VolumeStore

__all__ = ["Engine", "API_VERSION", "VERSION"]

VERSION = "0.1.0"
API_VERSION = "1.50"
log = logging.getLogger("knarr.engine")
_BUILTIN = {"docker.io/library/hello-world:latest": builtin.hello_world,
            "docker.io/library/busybox:latest": builtin.busybox}


class Engine(ContainersMixin, LifecycleMixin, ExecMixin, ObserveMixin, ImagesMixin,
             FilesystemsMixin, ArchivesMixin, RegistryMixin,
             BuildMixin, NetworksMixin, NetAttachMixin, VolumesMixin):
    """Containers, images, exec, logs, stats and events for one state root."""

    def __init__(self, root: str, exec_root: str, helper: socket.socket | None,
                 net_options: dict | None = None) -> None:
        self.root = os.path.abspath(root)
        self.exec_root = os.path.abspath(exec_root)
        self.runtime_root = os.path.join(self.exec_root, "runtime")
        for path in (self.root, os.path.join(self.root, "containers"), self.exec_root,
                     os.path.join(self.exec_root, "containers"), self.runtime_root):
            os.makedirs(path, mode=0o711, exist_ok=True)
        self.helper = helper
        self.records = records.Records(self.root)
        self.images = ImageStore(self.root, in_use=self.records.image_in_use)
        self.volumes = VolumeStore(self.root)
        # The image store's SQLite connections are used from this one thread only.
        self.image_thread = concurrent.futures.ThreadPoolExecutor(1, "images")
        self.events = events.EventBus()
        self.links: dict[str, asyncio.Task] = {}
        self.waiters: dict[str, list[tuple[str, asyncio.Future]]] = {}
        self.pending_attach: dict[str, list[asyncio.Future]] = {}
        self.execs: dict[str, dict] = {}
        self.starting: set[str] = set()
        self.names_held: set[str] = set()  # generated names whose records are being made
        self.died: set[str] = set()  # the watch has reported this run's die
        self.removing: set = set()  # removed containers' files, going in the image thread
        self.forgotten: dict[str, dict] = {}  # --rm containers removed while monitors finish
        self.stats_cache: dict[str, tuple[float, dict]] = {}
        self._host_caps: list[str] | None = None
        self.networks_init(net_options)
        self.net_boot()

    async def in_image_thread(self, fn, *args):
        """Run a blocking image-store call off the loop, in the image thread."""
        return await asyncio.get_running_loop().run_in_executor(self.image_thread, fn, *args)

    def close(self) -> None:
        """Release databases and the image thread (containers keep running)."""
        for task in self.links.values():
            task.cancel()
        self.image_thread.shutdown(wait=True)
        self.net_thread.shutdown(wait=True)
        self.net_teardown_thread.shutdown(wait=True)
        self.netstore.close()
        self.records.close()
        self.images.close()
        self.volumes.unmount_all()

    # -- paths --------------------------------------------------------------

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.root, "containers", cid)

    def monitor_dir(self, cid: str) -> str:
        return monitor_io.monitor_dir(self.exec_root, cid)

    def state_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), "state.json")

    def log_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), f"{cid}-json.log")

    def host_capabilities(self) -> list[str]:
        if self._host_caps is None:
            from knarr.runtime import capabilities

            self._host_caps = capabilities.host_capabilities()
        return self._host_caps

    # -- images -------------------------------------------------------------

    def _image_sync(self, ref: str) -> tuple[str, dict]:
        try:
            image_id = self.images.resolve(ref)
        except NotFound:
            key = _normalise(ref)
            if key not in _BUILTIN:
                raise NotFound(f"No such image: {ref}", image=ref) from None
            image_id = _BUILTIN[key](self.images)
        return image_id, self.images.config(image_id)

    async def image(self, ref: str) -> tuple[str, dict]:
        """(id, config) of an image; knarr's built-in images are made on first use."""
        return await self.in_image_thread(self._image_sync, ref)

    # -- live restore -------------------------------------------------------

    async def restore(self) -> None:
        """Find containers whose monitors kept running while no daemon was up."""
        base = os.path.join(self.exec_root, "containers")
        running = set()
        known = {r["Id"] for r in self.records.all()}
        for cid in sorted(os.listdir(base)):
            if cid not in known:  # killed between removing the record and this dir
                await self._clean_unrecorded(cid)
                continue
            if await self._attach_link(cid):
                running.add(cid)
            else:
                await asyncio.to_thread(self.cleanup_orphan, cid)
        await self.net_restore(running)
        await self.in_image_thread(self.sweep_removed)
        # Snapshot directories a killed prepare or unpack made before its record (no
        # load is in flight yet, so none is in use).
        await self.in_image_thread(self.images.snapshots.cleanup)
        # What a killed pull or build left: its ingests, its lease, its step snapshots.
        await self.in_image_thread(self._sweep_transfers)
        for record in self.records.all():
            cid = record["Id"]
            state = self.read_state(cid)
            if cid not in running and state.get("Running"):
                self._mark_exited(cid, state, 255, "the container's monitor is gone")
            if cid not in running and record["HostConfig"].get("AutoRemove") and \
                    state.get("Status") == "exited":
                await self.delete(cid, force=True)
            elif cid not in running and _starts_with_daemon(record, state):
                try:
                    await self.start(cid)
                except KnarrError as exc:
                    log.warning("start %s with the daemon: %s", cid, exc)
        # the files of what restore removed are gone before the first request is served
        await asyncio.gather(*list(self.removing), return_exceptions=True)

    async def _clean_unrecorded(self, cid: str) -> None:
        """A monitor dir whose container has no record: an --rm container removed at its
        die just before the daemon went down. Let its monitor finish (or stop it), then
        clean up what is left; its files go with `sweep_removed`."""
        try:
            _reply, reader, writer = await self.monitor_open(cid, {"op": "watch"})
        except Conflict:
            pass  # no monitor
        else:
            try:
                await self.monitor_call(cid, {"op": "stop", "signal": 9, "timeout": 0})
            except Conflict:
                pass  # it finished meanwhile
            try:
                await asyncio.wait_for(reader.read(), 15)
            except (TimeoutError, OSError):
                pass
            writer.close()
        await asyncio.to_thread(self.cleanup_orphan, cid)

    def _sweep_transfers(self) -> None:
        from knarr.engine.building import remove_stale_scratch, remove_stale_steps

        self.images.content.clean_ingests()  # none is live at start
        self.images.content.leased()  # drops the leases of dead processes
        remove_stale_steps(self.images.snapshots)
        remove_stale_scratch(self.root)

    def cleanup_orphan(self, cid: str) -> None:
        """Tear down what a dead monitor left: the runtime container, the rootfs mount."""
        from knarr.runtime import container_delete
        from knarr.sys import MNT_DETACH, umount2

        try:
            container_delete.delete(self.runtime_root, cid, force=True)
        except NotFound:
            pass  # the monitor removed it before it died
        except Exception as exc:  # noqa: BLE001 - best effort: it may be half gone already
            log.warning("tear down %s after its monitor: %s", cid, exc)
        rootfs = os.path.join(self.monitor_dir(cid), "rootfs")
        while os.path.ismount(rootfs):
            try:
                umount2(rootfs, MNT_DETACH)
            except OSError:
                if os.path.ismount(rootfs):
                    raise  # else its monitor unmounted it between our look and our call
        shutil.rmtree(self.monitor_dir(cid), ignore_errors=True)

    def rootfs_mounted(self, cid: str) -> bool:
        """Is the container's rootfs still mounted (its monitor unmounts it on exit)?"""
        return os.path.ismount(os.path.join(self.monitor_dir(cid), "rootfs"))

    # -- state --------------------------------------------------------------

    def read_state(self, cid: str) -> dict:
        """The state file as the monitor last wrote it (a created container's if none)."""
        return monitor_io.read_state(self.state_path(cid)) or {"Status": "created"}

    def _mark_exited(self, cid: str, state: dict, code: int, error: str) -> None:
        state.update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                     ExitCode=code, Error=error, FinishedAt=jsonlog.timestamp())
        monitor_io.write_state(self.state_path(cid), state, durable=True)

    def write_json(self, path: str, doc: dict, durable: bool = True) -> None:
        """Write a JSON document whole (temp file, fsync unless run-time state, rename)."""
        tmp = f"{path}.tmp"
        data = json.dumps(doc)  # the C encoder; json.dump writes piece by piece in Python
        with open(tmp, "w") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp, path)

    def oci_config(self, record: dict, netns: str | None = None) -> dict:
        """The OCI runtime config for a container record (joining `netns` if given)."""
        from knarr.runtime import seccomp

        host = record["HostConfig"]
        devices = hostdevices.requested_devices(host.get("Devices"))
        if host.get("Privileged"):
            devices = (hostdevices.host_devices() + devices[0], devices[1])
        return oci_config.build(record, self.container_dir(record["Id"]),
                                self.host_capabilities(), seccomp.default_profile, devices,
                                netns)

    def save_record(self, record: dict) -> None:
        """Store a changed container record (the index and config.v2.json)."""
        self.records.update(record)
        self.write_json(os.path.join(self.container_dir(record["Id"]), "config.v2.json"),
                        record)

    def daemon_id(self) -> str:
        """A stable id for this engine root, made on first use."""
        path = os.path.join(self.root, "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            value = names.new_id()
            with open(path, "w") as f:
                f.write(value)
            return value

    def new_id(self) -> str:
        return names.new_id()


def _starts_with_daemon(record: dict, state: dict) -> bool:
    """Docker's rule: `always` starts with the daemon, `unless-stopped` unless stopped by hand."""
    policy = record["HostConfig"]["RestartPolicy"]["Name"]
    if not state.get("StartedAt") or state["StartedAt"].startswith("0001-"):
        return False
    return policy == "always" or (policy == "unless-stopped" and not state.get("ManualStop"))


def _normalise(ref: str) -> str:
    from knarr.oci import reference

    try:
        return str(reference.parse(ref))
    except Exception:  # noqa: BLE001 - not a name at all
        return ref
