"""Push: an image's blobs and manifest from the content store to a registry.

Each blob is checked with HEAD first ("Layer already exists"); a blob the
same registry holds in another repository the image is named in is mounted
from there (`?mount=&from=`) instead of sent; otherwise it is uploaded:
monolithically (POST, then PUT with the bytes) up to `chunk_size`, in
`PATCH` chunks with `Content-Range` beyond. The manifest goes last, with its
own media type, and the registry's `Docker-Content-Digest` must match it.
"""

import concurrent.futures
import threading

from knarr.content import ContentStore
from knarr.distribution import registry
from knarr.distribution.auth import Credentials
from knarr.distribution.hosts import Hosts
from knarr.distribution.progress import Emit, Progress, short_id
from knarr.distribution.session import Session
from knarr.errors import InvalidArgument
from knarr.oci.reference import Reference

__all__ = ["Pusher"]

_PIECE = 1 << 20


class Pusher:
    """Pushes images from a content store."""

    def __init__(self, hosts: Hosts, content: ContentStore, max_concurrent: int = 5,
                 chunk_size: int = 64 << 20) -> None:
        self.hosts = hosts
        self.content = content
        self.max_concurrent = max(1, max_concurrent)
        self.chunk_size = chunk_size

    def push(self, target: Reference, row: dict, creds: Credentials | None = None,
             emit: Emit | None = None, mount_from: list[str] | None = None) -> str:
        """Push the image `row` (an image store row) as `target`; return the manifest digest."""
        progress = Progress(emit)
        progress.status(f"The push refers to repository [{target.name}]")
        session = Session(self.hosts, target.domain, target.path, creds, actions="pull,push")
        sources = [s for s in mount_from or [] if s != target.path]
        for source in sources:
            session.add_scope(f"repository:{source}:pull")
        manifest = self.content.read(row["manifest"])
        try:
            layers = list(reversed(row["layers"]))
            for layer in layers:
                progress.status("Preparing", _ident(layer))
            for i, layer in enumerate(layers):
                if i >= self.max_concurrent:
                    progress.status("Waiting", _ident(layer))
            self._blobs(session, layers, progress, sources)
            config = {"digest": row["id"], "size": self.content.info(row["id"]).size}
            self._blob(session, config, None, progress, sources)
            where = target.digest or target.tag or "latest"
            if target.digest and target.digest != row["manifest"]:
                raise InvalidArgument(f"push {target}: the image's manifest is "
                                      f"{row['manifest']}", digest=target.digest)
            digest = registry.put_manifest(session, where, manifest, row["manifest_type"])
        finally:
            session.close()
        tag = target.tag or ("" if target.digest else "latest")
        progress.status(f"{tag or digest}: digest: {digest} size: {len(manifest)}")
        progress.aux({"Tag": tag, "Digest": digest, "Size": len(manifest)})
        return digest

    def _blobs(self, session: Session, layers: list[dict], progress: Progress,
               sources: list[str]) -> None:
        stop = threading.Event()

        def one(layer):
            if stop.is_set():
                return
            try:
                self._blob(session, layer, _ident(layer), progress, sources)
            except BaseException:
                stop.set()
                raise

        with concurrent.futures.ThreadPoolExecutor(self.max_concurrent, "push") as pool:
            for future in [pool.submit(one, layer) for layer in layers]:
                future.result()

    def _blob(self, session: Session, desc: dict, ident: str | None, progress: Progress,
              sources: list[str]) -> None:
        digest = desc["digest"]
        if registry.blob_exists(session, digest):
            if ident:
                progress.status("Layer already exists", ident)
            return
        for source in sources:
            if self._mount(session, digest, source):
                if ident:
                    progress.status(f"Mounted from {source}", ident)
                return
        if self.content.info(digest).size != desc["size"]:
            raise InvalidArgument(f"push {digest}: the stored blob is not {desc['size']} bytes",
                                  digest=digest)
        self._upload(session, desc, ident, progress)
        if ident:
            progress.status("Pushed", ident)

    @staticmethod
    def _mount(session: Session, digest: str, source: str) -> bool:
        url = registry.with_query(f"/v2/{session.repository}/blobs/uploads/", mount=digest,
                                  **{"from": source})
        resp = session.request("POST", url, ok=(201, 202), what=f"mount {digest}")
        if resp.status == 201:
            return True
        _cancel(session, registry.upload_location(session, resp))
        return False

    def _upload(self, session: Session, desc: dict, ident: str | None,
                progress: Progress) -> None:
        resp = session.request("POST", f"/v2/{session.repository}/blobs/uploads/",
                               ok=(202,), what=f"push {desc['digest']}: start upload")
        location = registry.upload_location(session, resp)
        path = self.content.blob_path(desc["digest"])
        size = desc["size"]
        sent = 0
        if size > self.chunk_size:
            while sent < size:
                count = min(self.chunk_size, size - sent)
                resp = session.request(
                    "PATCH", location,
                    {"Content-Type": "application/octet-stream",
                     "Content-Range": f"{sent}-{sent + count - 1}",
                     "Content-Length": str(count)},
                    _reader(path, sent, count, progress, ident, size), ok=(202,),
                    what=f"push {desc['digest']}: upload chunk at {sent}")
                location = registry.upload_location(session, resp)
                sent += count
            body, headers = None, {}
        else:
            body = _reader(path, 0, size, progress, ident, size)
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Length": str(size)}
        session.request("PUT", registry.with_query(location, digest=desc["digest"]), headers,
                        body, ok=(201,), what=f"push {desc['digest']}: finish upload")


def _reader(path: str, offset: int, count: int, progress: Progress, ident: str | None,
            total: int):
    """A body callable: each call (each retry) reads the piece afresh, reporting progress."""
    def body():
        def pieces():
            with open(path, "rb") as f:
                f.seek(offset)
                left = count
                while left > 0:
                    data = f.read(min(_PIECE, left))
                    if not data:
                        raise InvalidArgument(f"push: {path} ended early")
                    left -= len(data)
                    if ident:
                        progress.bytes("Pushing", ident, offset + count - left, total,
                                       force=left == 0)
                    yield data
        return pieces()
    return body


def _cancel(session: Session, location: str) -> None:
    try:
        session.request("DELETE", location, ok=(200, 202, 204, 404))
    except Exception:  # noqa: BLE001 - a leftover upload session is the registry's to expire
        pass


def _ident(layer: dict) -> str:
    return short_id(layer.get("diff_id") or layer["digest"])

