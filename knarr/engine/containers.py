"""Containers as records: create, inspect, list, rename, remove."""

import asyncio
import logging
import os
import shutil
import time

from knarr.engine import filtering, merge, names, oci_config
from knarr.engine.timefmt import human_duration, parse_timestamp
from knarr.errors import Conflict, InvalidArgument, KnarrError, NotFound

__all__ = ["ContainersMixin"]

_PRIVATE = ("_created", "_snapshot", "_networks", "_mountopts")
log = logging.getLogger("knarr.engine")
_ZERO_TIME = "0001-01-01T00:00:00Z"


def _resolv_conf(path: str, host: dict, embedded: bool) -> str:
    """The container's resolv.conf: the embedded server (user networks), --dns, or the
    host's resolvers that a container can reach."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        text = ""
    if host.get("NetworkMode") == "host" and not host.get("Dns"):
        return text
    lines = [line for line in text.splitlines() if not line.startswith("nameserver")]
    if host.get("DnsSearch"):
        lines = [line for line in lines if not line.startswith(("search", "domain"))]
        lines.append("search " + " ".join(host["DnsSearch"]))
    if host.get("DnsOptions"):
        lines.append("options " + " ".join(host["DnsOptions"]))
    if embedded:
        return "\n".join(["nameserver 127.0.0.11", *lines, "options ndots:0"]) + "\n"
    servers = host.get("Dns") or [
        line.split()[1] for line in text.splitlines()
        if line.startswith("nameserver") and len(line.split()) > 1 and
        # a resolver on the host's loopback is out of reach from a container's own network
        not line.split()[1].startswith(("127.", "::1"))]
    return "\n".join([f"nameserver {s}" for s in servers] + lines) + "\n"


# container id -> its cgroup driver (paths only), for is_paused
_CGROUPS: dict = {}

class ContainersMixin:
    """Create, look up, list, rename and remove containers."""

    def resolve(self, ref: str) -> str:
        """The id of the container `ref` names (id, name or unique prefix)."""
        return self.records.resolve(ref)

    def record(self, ref: str) -> dict:
        """A container's stored record."""
        return self.records.get(self.resolve(ref))

    async def create(self, body: dict, name: str | None,
                     base: tuple[str, dict, str | None] | None = None) -> dict:
        """Make a container from a create request; return {Id, Warnings}.

        `base` (a build's step container) gives the image id, image config and
        parent layer (chain id) directly, for an image state not registered."""
        if not isinstance(body, dict):
            raise InvalidArgument("config cannot be empty in order to create a container")
        image_ref = body.get("Image")
        if not image_ref:
            raise InvalidArgument("no image specified: config cannot be empty in order to "
                                  "create a container")
        merge.validate_host_config(body.get("HostConfig") or {})
        if name:
            names.validate_name(name)
            self.records.require_free(name.lstrip("/"))
        if base is None:  # the image and its top layer in one trip to the image thread
            base = await self.in_image_thread(self._image_and_parent, image_ref)
        image_id, image_config = base[0], base[1]
        generated = not name
        # A generated name is held from here to its record: concurrent creates between
        # their check and their insert would otherwise draw the same one (50 at once did).
        name = merge.check_name(name, lambda n: self.records.name_taken(n) or
                                n in self.names_held)
        if generated:
            self.names_held.add(name)
        try:
            return await self._create_named(body, name, image_id, image_config, image_ref,
                                            base)
        finally:
            self.names_held.discard(name)

    async def _create_named(self, body: dict, name: str, image_id: str, image_config: dict,
                            image_ref: str, base) -> dict:
        cid = self.new_id()
        record = merge.merge(body, image_config, image_id, image_ref, cid, name)
        record["_networks"] = self.resolve_network_mode(record["HostConfig"],
                                                        body.get("NetworkingConfig"))
        self.oci_config(record)  # refuse a bad capability, ulimit or profile now
        made = self.prepare_mounts(record, image_config)
        cdir = self.container_dir(cid)
        os.makedirs(cdir, mode=0o710)
        key = f"container-{cid}"
        try:
            # the files (config.v2.json fsync'd) and the rw snapshot at the same time; the
            # record is ours alone until both are done
            results = await asyncio.gather(
                asyncio.to_thread(self._write_files, record, cdir),
                self._prepare_rw(key, base), return_exceptions=True)
            mounts = results[1]
            if not isinstance(mounts, BaseException):
                record["_snapshot"] = {"key": key, "mounts": mounts}  # dropped if files failed
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            record["GraphDriver"] = {"Name": "overlay2", "Data": _graph_data(mounts)}
            await self.copy_up_volumes(record)
            self.records.add(record)
        except BaseException:
            await self._drop_files(cid, record)
            self.drop_volumes(made)
            raise
        self.publish(cid, "create")
        return {"Id": cid, "Warnings": []}

    def _image_and_parent(self, ref: str) -> tuple[str, dict, str]:
        """(id, config, chain id of the top layer) of an image (in the image thread)."""
        image_id, config = self._image_sync(ref)
        return image_id, config, self.images.chain_ids(image_id)[-1]

    async def _prepare_rw(self, key: str, base: tuple[str, dict, str | None]) -> list[dict]:
        return await self.in_image_thread(self.images.snapshots.prepare, key, base[2])

    def _write_files(self, record: dict, cdir: str) -> None:
        config, host = record["Config"], record["HostConfig"]
        files = {"hostname": config["Hostname"] + "\n",
                 "hosts": oci_config.hosts_file(config["Hostname"], host.get("ExtraHosts")),
                 "resolv.conf": _resolv_conf(self.net_opts["resolv_conf"], host,
                                             self._embedded_dns(record))}
        if host.get("NetworkMode") == "host":
            files["hosts"] = open("/etc/hosts").read()
        for name, text in files.items():
            with open(os.path.join(cdir, name), "w") as f:
                f.write(text)
        record.update(ResolvConfPath=os.path.join(cdir, "resolv.conf"),
                      HostnamePath=os.path.join(cdir, "hostname"),
                      HostsPath=os.path.join(cdir, "hosts"), LogPath=self.log_path(record["Id"]))
        self.write_json(os.path.join(cdir, "config.v2.json"), record)

    def _drop_files_later(self, cid: str, record: dict) -> None:
        future = asyncio.get_running_loop().run_in_executor(
            self.image_thread, self._drop_files_sync, cid, record.get("_snapshot"))
        self.removing.add(future)
        future.add_done_callback(self._dropped)

    def _dropped(self, future) -> None:
        self.removing.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("remove a container's files: %s", future.exception())

    def _drop_files_sync(self, cid: str, snapshot: dict | None) -> None:
        if snapshot:
            try:
                self.images.snapshots.remove(snapshot["key"])
            except NotFound:
                pass
        shutil.rmtree(self.container_dir(cid), ignore_errors=True)

    def sweep_removed(self) -> None:
        """Remove what containers removed just before a crash left: their dirs and rw
        snapshots (a container's record goes first, its files a moment later)."""
        known = {record["Id"] for record in self.records.all()}
        base = os.path.join(self.root, "containers")
        for name in os.listdir(base):
            if name not in known and len(name) == 64:
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        for snapshot in self.images.snapshots.walk():
            key = snapshot["key"]
            if key.startswith("container-") and key.removeprefix("container-") not in known:
                try:
                    self.images.snapshots.remove(key)
                except NotFound:
                    pass

    def _embedded_dns(self, record: dict) -> bool:
        """User-defined networks answer names through the embedded server."""
        return any(nid in self.nets and self.nets[nid]["Name"] not in ("bridge", "host", "none")
                   for nid in record.get("_networks") or {})

    async def _drop_files(self, cid: str, record: dict) -> None:
        snapshot = record.get("_snapshot")
        if snapshot:
            try:
                await self.in_image_thread(self.images.snapshots.remove, snapshot["key"])
            except NotFound:
                pass
        shutil.rmtree(self.container_dir(cid), ignore_errors=True)

    def publish(self, cid: str, action: str, **extra: str) -> None:
        """Publish a container event with Docker's attributes."""
        try:
            record = self.records.get(cid)
        except NotFound:
            record = {"Name": "/", "Config": {"Image": "", "Labels": {}}}
        attrs = dict(record["Config"].get("Labels") or {})
        attrs.update(image=record["Config"]["Image"], name=record["Name"].lstrip("/"), **extra)
        self.events.publish("container", action, cid, attrs)

    # -- state --------------------------------------------------------------

    def state(self, cid: str) -> dict:
        """Docker's State object for a container, the freezer consulted for Paused."""
        raw = self.read_state(cid)
        state = {"Status": raw.get("Status", "created"), "Running": raw.get("Running", False),
                 "Paused": False, "Restarting": raw.get("Restarting", False),
                 "OOMKilled": raw.get("OOMKilled", False), "Dead": False,
                 "Pid": raw.get("Pid", 0), "ExitCode": raw.get("ExitCode", 0),
                 "Error": raw.get("Error", ""), "StartedAt": raw.get("StartedAt", _ZERO_TIME),
                 "FinishedAt": raw.get("FinishedAt", _ZERO_TIME)}
        if raw.get("Health"):
            state["Health"] = raw["Health"]
        if state["Running"] and cid not in self.links:
            state.update(Status="exited", Running=False, Pid=0)  # monitor gone: not ours
        if state["Running"] and self.is_paused(cid):
            state.update(Status="paused", Paused=True)
        state["_restart_count"] = raw.get("RestartCount", 0)
        return state

    def is_paused(self, cid: str) -> bool:
        # The driver object only names the container's directories: it is kept (every
        # exec create and start, inspect and ps asks, and making it joins a path per
        # hierarchy); is_frozen reads the one freezer file, False where there is none.
        cgroup = _CGROUPS.get(cid)
        if cgroup is None:
            from knarr.runtime import cgroups

            if len(_CGROUPS) >= 4096:
                _CGROUPS.clear()
            cgroup = _CGROUPS[cid] = cgroups.open_cgroup(f"/knarr/{cid}", cid)
        try:
            return cgroup.is_frozen()
        except (OSError, KnarrError):  # the cgroup went away as we read it
            return False

    def inspect(self, ref: str, size: bool = False) -> dict:
        """Docker's container inspect document."""
        record = self.record(ref)
        cid = record["Id"]
        state = self.state(cid)
        out = {k: v for k, v in record.items() if k not in _PRIVATE}
        out["RestartCount"] = state.pop("_restart_count")
        out["State"] = state
        out["ExecIDs"] = [e for e, x in self.execs.items() if x["ContainerID"] == cid] or None
        out["NetworkSettings"] = self.network_settings(record)
        if size:
            out["SizeRw"], out["SizeRootFs"] = self._sizes(record)
        return out

    def _sizes(self, record: dict) -> tuple[int, int]:
        snapshot = record.get("_snapshot") or {}
        total = 0
        for dirpath, _dirs, files in os.walk(_upper_of(snapshot.get("mounts", []))):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        image = self.images.records.get(record["Image"]) or {"layers": []}
        return total, total + sum(layer["diff_size"] for layer in image["layers"])

    # -- list ---------------------------------------------------------------

    def list(self, all_: bool = False, limit: int = -1, size: bool = False,
             filters: dict | None = None) -> list[dict]:
        """Docker's container list, newest first."""
        filters = filters or {}
        out = []
        for record in self.records.all():
            state = self.state(record["Id"])
            if not all_ and not state["Running"] and not filters.get("status") and limit <= 0:
                continue
            if not _passes(record, state, filters):
                continue
            out.append(self._summary(record, state, size))
            if 0 < limit <= len(out):
                break
        return out

    def _summary(self, record: dict, state: dict, size: bool) -> dict:
        config = record["Config"]
        summary = {
            "Id": record["Id"], "Names": [record["Name"]], "Image": config["Image"],
            "ImageID": record["Image"],
            "Command": " ".join([record["Path"], *record["Args"]]),
            "Created": int(record["_created"]), "Ports": self.port_list(record["Id"]),
            "Labels": config["Labels"] or {},
            "State": state["Status"], "Status": status_text(state),
            "HostConfig": {"NetworkMode": record["HostConfig"]["NetworkMode"]},
            "NetworkSettings": {"Networks": self.network_settings(record)["Networks"]},
            "Mounts": record.get("Mounts") or [],
        }
        if size:
            summary["SizeRw"], summary["SizeRootFs"] = self._sizes(record)
        return summary

    # -- rename and remove --------------------------------------------------

    async def rename(self, ref: str, new_name: str) -> None:
        """Give a container a new name."""
        if not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        new_name = names.validate_name(new_name)
        record = self.record(ref)
        old = record["Name"]
        if old.lstrip("/") == new_name:
            raise InvalidArgument("Renaming a container with the same name as its current "
                                  "name", name=new_name)
        record["Name"] = "/" + new_name
        self.records.update(record)
        self.write_json(os.path.join(self.container_dir(record["Id"]), "config.v2.json"),
                        record)
        self.publish(record["Id"], "rename", oldName=old)

    async def delete(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """Remove a container; a running one only with `force` (killed first)."""
        record = self.record(ref)
        cid = record["Id"]
        state = self.state(cid)
        if not state["Running"] and not state["Restarting"] and cid in self.links:
            await self._wait_link_gone(cid, 5)  # its monitor is finishing
        if state["Running"] or state["Restarting"] or cid in self.links:
            if not force:
                what = "paused" if state["Paused"] else "running"
                raise Conflict(f"You cannot remove a {what} container {cid}. "
                               f"{'Unpause and then stop' if state['Paused'] else 'Stop'} "
                               "the container before attempting removal or force remove",
                               id=cid)
            await self.kill_for_good(cid)
        await self.net_stop(cid)
        if self.rootfs_mounted(cid):  # a monitor killed before it could unmount
            await asyncio.to_thread(self.cleanup_orphan, cid)
        shutil.rmtree(self.monitor_dir(cid), ignore_errors=True)
        self.forget(cid, record, state.get("ExitCode", 0))
        # The files go after the answer (`run --rm` waits for "removed"), in the image
        # thread: image calls queue behind it there, so none sees the snapshot still in
        # use; a daemon killed before it is done sweeps the rest at its next start.
        self._drop_files_later(cid, record)
        if volumes or record["HostConfig"].get("AutoRemove"):
            self.remove_anonymous_volumes(record)

    def forget(self, cid: str, record: dict, code: int) -> None:
        """The container is removed for the API: record, execs, destroy event, waiters."""
        self.records.remove(cid)
        self.stats_cache.pop(cid, None)
        for exec_id in [e for e, x in self.execs.items() if x["ContainerID"] == cid]:
            del self.execs[exec_id]
        self.events.publish("container", "destroy", cid, {
            **(record["Config"].get("Labels") or {}), "image": record["Config"]["Image"],
            "name": record["Name"].lstrip("/")})
        self.wake(cid, "removed", code)

    def wake(self, cid: str, event: str, code: int) -> None:
        """Answer the waiters an event satisfies: die wakes next-exit and not-running."""
        keep = []
        for condition, future in self.waiters.get(cid, []):
            if future.done():
                continue
            if event == "removed" or (event == "die" and condition != "removed"):
                future.set_result(code)
            else:
                keep.append((condition, future))
        self.waiters[cid] = keep
        if not keep:
            self.waiters.pop(cid, None)

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        """Wait for a container as Docker's wait conditions say; return its exit code."""
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidArgument(f"invalid condition: {condition}", condition=condition)
        condition = condition or "not-running"
        cid = self.resolve(ref)
        state = self.state(cid)
        if condition == "not-running" and not state["Running"] and cid not in self.links and \
                cid not in self.starting:
            return state["ExitCode"]
        future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(cid, []).append((condition, future))
        return await future


def status_text(state: dict) -> str:
    """The STATUS column: Up 3 seconds, Exited (0) 2 minutes ago, Created, ..."""
    now = time.time()
    if state["Status"] == "restarting":
        ago = human_duration(now - parse_timestamp(state["FinishedAt"]))
        return f"Restarting ({state['ExitCode']}) {ago} ago"
    if state["Running"]:
        text = "Up " + human_duration(now - parse_timestamp(state["StartedAt"]))
        if state["Paused"]:
            return text + " (Paused)"
        health = (state.get("Health") or {}).get("Status")
        if health:
            text += f" ({'health: starting' if health == 'starting' else health})"
        return text
    if state["Status"] == "created" or state["StartedAt"] == _ZERO_TIME:
        return "Created"
    ago = human_duration(now - parse_timestamp(state["FinishedAt"]))
    return f"Exited ({state['ExitCode']}) {ago} ago"


def _passes(record: dict, state: dict, filters: dict) -> bool:
    labels = record["Config"].get("Labels") or {}
    checks = {
        "id": lambda v: record["Id"].startswith(v),
        "name": lambda v: v.lstrip("/") in record["Name"],
        "status": lambda v: v == state["Status"],
        "exited": lambda v: not state["Running"] and str(state["ExitCode"]) == v and
        state["Status"] == "exited",
        "label": lambda v: filtering.label_matches(labels, v),
        "ancestor": lambda v: v in (record["Config"]["Image"], record["Image"],
                                    record["Image"].removeprefix("sha256:")[:12]),
        "health": lambda v: (state.get("Health") or {}).get("Status", "none") == v,
    }
    return filtering.matches(checks, filters)


def _upper_of(mounts: list[dict]) -> str:
    for m in mounts:
        for opt in m.get("options", []):
            if opt.startswith("upperdir="):
                return opt[len("upperdir="):]
        if m["type"] == "bind":
            return m["source"]
    return "/nonexistent"


def _graph_data(mounts: list[dict]) -> dict:
    data = {}
    for m in mounts:
        for opt in m.get("options", []):
            key, _, value = opt.partition("=")
            if key in ("lowerdir", "upperdir", "workdir"):
                data[key[0].upper() + key[1:].replace("dir", "Dir")] = value
    return data
