"""Volumes as the engine sees them: a container's mount points made real, and the
/volumes verbs with Docker's in-use rules."""

import os

from knarr.engine import mountspecs
from knarr.errors import Conflict, InvalidArgument, NotFound
from knarr.volumes import ANONYMOUS_LABEL

__all__ = ["VolumesMixin"]

_VOLUME_FILTERS = ("dangling", "label", "name", "driver")


class VolumesMixin:
    """Mount points at create, volume create/list/inspect/remove/prune."""

    # -- containers' mount points ---------------------------------------------

    def _volumes_from(self, specs: list[str] | None) -> list[dict]:
        out = []
        for spec in specs or []:
            ref, _, mode = spec.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidArgument(f"invalid mode: {mode}", volumes_from=spec)
            try:
                source = self.record(ref)
            except NotFound:
                raise NotFound(f"No such container: {ref}", container=ref) from None
            for m in source.get("Mounts") or []:
                if m["Type"] == "tmpfs":
                    continue
                m = dict(m)
                if mode:
                    m["RW"] = mode == "rw"
                    m["Mode"] = mode
                m["_nocopy"] = True  # Docker fills a volume from an image, not from another
                out.append(m)
        return out

    def prepare_mounts(self, record: dict, image_config: dict) -> list[str]:
        """Resolve the record's mount points: volumes made (named ones when missing,
        anonymous ones always), bind sources checked or made. Sets record["Mounts"];
        returns the names of the volumes made, to undo on failure."""
        host, config = record["HostConfig"], record["Config"]
        image_vols = {**((image_config.get("config") or {}).get("Volumes") or {}),
                      **(config.get("Volumes") or {})}
        config["Volumes"] = image_vols or None
        points = mountspecs.parse(host, self._volumes_from(host.get("VolumesFrom")),
                                  image_vols)
        made: list[str] = []
        try:
            for m in points:
                if m["Type"] == "volume":
                    self._volume_point(m, made)
                elif m["Type"] == "bind":
                    _bind_source(m)
        except BaseException:
            self.drop_volumes(made)
            raise
        record["Mounts"] = mountspecs.public(points)
        record["_mountopts"] = {"tmpfs": {m["Destination"]: m["_tmpfs"] for m in points
                                          if m["Type"] == "tmpfs"},
                                "copyup": [[m["Name"], m["Destination"]] for m in points
                                           if m["Type"] == "volume" and not m.get("_nocopy")
                                           and m.get("_new_or_empty")]}
        return made

    def _volume_point(self, m: dict, made: list[str]) -> None:
        labels = dict(m.get("_labels") or {})
        if m.get("_anonymous"):
            labels[ANONYMOUS_LABEL] = ""
        doc, new = self.volumes.create(m["Name"] or None, m.get("Driver") or "local",
                                       m.get("_opts"), labels)
        m["Name"], m["Source"], m["Driver"] = doc["Name"], doc["Mountpoint"], doc["Driver"]
        if new:
            made.append(doc["Name"])
            self.events.publish("volume", "create", doc["Name"], {"driver": "local"})
        m["_new_or_empty"] = new or not os.listdir(doc["Mountpoint"])

    async def copy_up_volumes(self, record: dict) -> None:
        """Fill each new, empty volume with what the image has at its destination."""
        for name, dest in (record.get("_mountopts") or {}).get("copyup") or []:
            path = self.volumes.mount(name)
            if not os.listdir(path):
                await self.copy_up(record, dest, path)
        record.get("_mountopts", {}).pop("copyup", None)

    def ready_volumes(self, record: dict) -> None:
        """Mount the device of each volume that has one, before the container starts."""
        for m in record.get("Mounts") or []:
            if m["Type"] == "volume":
                self.volumes.mount(m["Name"])

    def drop_volumes(self, names: list[str]) -> None:
        """Remove volumes (made for a container that failed, or anonymous ones at rm -v)."""
        for name in names:
            try:
                self.volumes.remove(name)
            except (NotFound, OSError):
                continue
            self.events.publish("volume", "destroy", name, {"driver": "local"})

    def remove_anonymous_volumes(self, record: dict) -> None:
        """rm -v: the container's anonymous volumes no other container uses."""
        names = []
        for m in record.get("Mounts") or []:
            if m["Type"] != "volume" or self.volume_users(m["Name"]):
                continue
            try:
                doc = self.volumes.get(m["Name"])
            except NotFound:
                continue
            if ANONYMOUS_LABEL in (doc.get("Labels") or {}):
                names.append(m["Name"])
        self.drop_volumes(names)

    def volume_users(self, name: str) -> list[str]:
        """Ids of the containers that mount a volume."""
        return [r["Id"] for r in self.records.all()
                if any(m["Type"] == "volume" and m.get("Name") == name
                       for m in r.get("Mounts") or [])]

    # -- the /volumes verbs ------------------------------------------------------

    def volume_create(self, body: dict) -> dict:
        """POST /volumes/create."""
        body = body or {}
        doc, new = self.volumes.create(body.get("Name") or None, body.get("Driver") or "local",
                                       body.get("DriverOpts"), body.get("Labels"))
        if new:
            self.events.publish("volume", "create", doc["Name"], {"driver": doc["Driver"]})
        return doc

    def volume_inspect(self, name: str) -> dict:
        """GET /volumes/{name}."""
        return self.volumes.get(name)

    def volume_list(self, filters: dict | None = None) -> list[dict]:
        """GET /volumes, Docker's filters applied."""
        filters = filters or {}
        for key in filters:
            if key not in _VOLUME_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'", filter=key)
        used = {m.get("Name") for r in self.records.all() for m in r.get("Mounts") or []}
        return [doc for doc in self.volumes.all() if _passes(doc, filters, doc["Name"] in used)]

    def volume_remove(self, name: str, force: bool = False) -> None:
        """DELETE /volumes/{name}: refused while a container uses it, even with force."""
        try:
            self.volumes.get(name)
        except NotFound:
            if force:
                return
            raise
        users = self.volume_users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]",
                           volume=name)
        self.drop_volumes([name])

    def volume_prune(self, filters: dict | None, anonymous_only: bool) -> dict:
        """POST /volumes/prune: unused volumes (only anonymous ones unless all=true)."""
        filters = dict(filters or {})
        every = filters.pop("all", ["false"])[-1].lower() in ("1", "true")
        deleted, freed = [], 0
        used = {m.get("Name") for r in self.records.all() for m in r.get("Mounts") or []}
        for doc in self.volumes.all():
            if doc["Name"] in used or not _label_filters(doc, filters):
                continue
            if anonymous_only and not every and \
                    ANONYMOUS_LABEL not in (doc.get("Labels") or {}):
                continue
            freed += self.volumes.size(doc["Name"])
            self.drop_volumes([doc["Name"]])
            deleted.append(doc["Name"])
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": freed}

    def volume_df(self) -> list[dict]:
        """The Volumes part of /system/df, with UsageData."""
        out = []
        for doc in self.volumes.all():
            doc["UsageData"] = {"Size": self.volumes.size(doc["Name"]),
                                "RefCount": len(self.volume_users(doc["Name"]))}
            out.append(doc)
        return out


def _bind_source(m: dict) -> None:
    source = m["Source"]
    if os.path.exists(source):
        return
    if not m.get("_create_src"):
        raise InvalidArgument(f'invalid mount config for type "bind": bind source path does '
                              f"not exist: {source}", source=source)
    os.makedirs(source, mode=0o755, exist_ok=True)


def _label_filters(doc: dict, filters: dict) -> bool:
    labels = doc.get("Labels") or {}

    def has(v: str) -> bool:
        key, eq, value = v.partition("=")
        return (labels.get(key) == value) if eq else key in labels

    if not all(has(v) for v in filters.get("label", [])):
        return False
    return not any(has(v) for v in filters.get("label!", []))


def _passes(doc: dict, filters: dict, used: bool) -> bool:
    for value in filters.get("dangling", []):
        if value.lower() in ("1", "true") and used:
            return False
        if value.lower() in ("0", "false") and not used:
            return False
    if filters.get("name") and not any(v in doc["Name"] for v in filters["name"]):
        return False
    if filters.get("driver") and doc["Driver"] not in filters["driver"]:
        return False
    return _label_filters(doc, filters)
