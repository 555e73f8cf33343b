"""Registry verbs: pull, push and login, wiring knarr.distribution to the image store.

A pull runs in threads of its own (its layers download in parallel), not in
the image thread, so listing or inspecting images goes on meanwhile; each
download thread unpacks through a Snapshotter of its own (its own SQLite
connection). Registering the pulled image, the last step, runs in the image
thread. Progress messages cross from those threads to the API's stream
through an asyncio queue.
"""

import asyncio
import base64
import threading

from knarr import fastjson
from knarr.distribution import Credentials, Hosts, Puller, Pusher, login, search
from knarr.errors import NotFound
from knarr.images import unpack
from knarr.oci import image_spec, reference
from knarr.snapshots import Snapshotter

__all__ = ["RegistryMixin", "decode_auth"]


def decode_auth(header: str | None) -> Credentials:
    """The credentials of an X-Registry-Auth header (URL-safe base64 JSON); empty if none."""
    if not header:
        return Credentials()
    padded = header + "=" * (-len(header) % 4)
    try:
        doc = fastjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return Credentials()
    return Credentials.from_auth_config(doc if isinstance(doc, dict) else {})


class _Unpacker:
    """The engine side of a pull's layers: extract with a per-thread Snapshotter."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.local = threading.local()
        self.opened: list[Snapshotter] = []
        self.lock = threading.Lock()

    def snaps(self) -> Snapshotter:
        snaps = getattr(self.local, "snaps", None)
        if snaps is None:
            snaps = self.local.snaps = Snapshotter(self.root)
            with self.lock:
                self.opened.append(snaps)
        return snaps

    def extract(self, stream, label: str) -> tuple:
        return unpack.extract_layer(self.snaps(), stream, label=label)

    def discard(self, key: str) -> None:
        snaps = self.snaps()
        if snaps.exists(key):
            snaps.remove(key)

    def chain_exists(self, chain: str) -> bool:
        return self.snaps().exists(chain)

    def close(self) -> None:
        for snaps in self.opened:
            snaps.close()


class RegistryMixin:
    """pull (with Docker's progress stream), push, and the /auth check."""

    registry_hosts: Hosts
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5

    def _hosts(self) -> Hosts:
        hosts = getattr(self, "registry_hosts", None)
        if hosts is None:
            hosts = self.registry_hosts = Hosts()
        return hosts

    async def pull_stream(self, ref: str, platform: str | None = None,
                          auth: str | None = None, emit=None) -> str:
        """Pull `ref`, sending Docker's progress messages to `emit`; return the image id.

        knarr's built-in images (hello-world, busybox) are made here, without a registry.
        """
        parsed = reference.parse(ref)
        want = image_spec.Platform.parse(platform) if platform else None
        if want is None and str(parsed) in self._builtin_names():
            image_id, _ = await self.image(ref)
            if emit:
                emit({"status": f"Pulling from {parsed.path}", "id": parsed.tag})
                emit({"status": f"Digest: {image_id}"})
                emit({"status": f"Status: Image is up to date for {parsed.familiar()}"})
            return image_id
        return await self._pull_registry(parsed, want, decode_auth(auth), emit)

    def _builtin_names(self) -> set[str]:
        from knarr.engine.core import _BUILTIN

        return set(_BUILTIN)

    async def pull(self, ref: str) -> str:
        """Pull without progress (a built-in image, or from its registry)."""
        return await self.pull_stream(ref)

    async def _pull_registry(self, parsed, want, creds: Credentials, emit) -> str:
        loop = asyncio.get_running_loop()

        def send(msg: dict) -> None:
            if emit is not None:
                loop.call_soon_threadsafe(emit, msg)

        unpacker = _Unpacker(self.root)
        puller = Puller(self._hosts(), self.images.content, unpacker.extract, unpacker.discard,
                        unpacker.chain_exists, self.max_concurrent_downloads)
        lease = self.images.content.lease("pull")
        def fetch():
            # the disk writes the blobs and layers while they arrive, so the syncfs
            # before the commit finds little left to write
            with unpack.WritingBack(self.images.root):
                return puller.pull(parsed, creds, want, send, lease)

        try:
            pulled = await asyncio.to_thread(fetch)
            try:
                before = await self.in_image_thread(self._image_of_name, str(parsed))
                image_id = await self.in_image_thread(self._register_pulled, pulled)
            finally:
                await asyncio.to_thread(_discard_unused, unpacker, pulled.extracted)
        finally:
            lease.release()
            unpacker.close()
        await asyncio.sleep(0)  # let the progress messages queued by the threads go first
        if emit is not None:
            emit({"status": f"Digest: {pulled.digest}"})
            shown = parsed.familiar()
            if before == image_id:
                emit({"status": f"Status: Image is up to date for {shown}"})
            else:
                emit({"status": f"Status: Downloaded newer image for {shown}"})
        self.events.publish("image", "pull", str(parsed), {"name": str(parsed)})
        return image_id

    def _image_of_name(self, name: str) -> str | None:
        return self.images.records.image_of(name)

    def _register_pulled(self, pulled) -> str:
        unpack.make_durable(self.images.root)
        return self.images.register(pulled.manifest, pulled.config, pulled.names,
                                    label=f"pull {pulled.reference.familiar()}",
                                    extracted=pulled.extracted)

    async def pull_all_tags(self, ref: str, platform: str | None, auth: str | None,
                            emit) -> None:
        """Pull every tag of a repository (`docker pull --all-tags`)."""
        parsed = reference.parse(ref, default_tag=False)
        from knarr.distribution import list_tags

        tags = await asyncio.to_thread(list_tags, self._hosts(), parsed, decode_auth(auth))
        for tag in tags:
            await self.pull_stream(str(parsed.with_tag(tag)), platform, auth, emit)

    async def push_stream(self, name: str, tag: str | None, auth: str | None, emit) -> None:
        """Push an image's tag (every tag of the repository without one) to its registry."""
        parsed = reference.parse(name, default_tag=False)
        if parsed.digest:
            names = [(parsed, await self.in_image_thread(self._by_manifest, parsed))]
        else:
            names = await self.in_image_thread(self._push_names, parsed, tag)
        loop = asyncio.get_running_loop()

        def send(msg: dict) -> None:
            loop.call_soon_threadsafe(emit, msg)

        pusher = Pusher(self._hosts(), self.images.content, self.max_concurrent_uploads)
        creds = decode_auth(auth)
        for target, image_id in names:
            await self.in_image_thread(self.images.materialize, image_id)  # built layers
            row = await self.in_image_thread(self.images.records.get, image_id)
            sources = await self.in_image_thread(self._mount_sources, image_id, target)
            await asyncio.to_thread(pusher.push, target, row, creds, send, sources)
        await asyncio.sleep(0)
        self.events.publish("image", "push", str(parsed), {"name": str(parsed)})

    def _by_manifest(self, parsed) -> str:
        """The image whose manifest has the digest a push names."""
        for image_id in self.images.records.ids():
            if self.images.records.get(image_id)["manifest"] == parsed.digest:
                return image_id
        raise NotFound(f"An image does not exist locally with the digest: {parsed.digest}",
                       image=str(parsed))

    def _mount_sources(self, image_id: str, target) -> list[str]:
        """Other repositories of the target's registry this image is named in: a blob the
        registry holds there can be mounted rather than sent."""
        out = []
        for name in self.images.records.names_of(image_id):
            found = reference.parse(name)
            if found.domain == target.domain and found.path != target.path \
                    and found.path not in out:
                out.append(found.path)
        return out

    def _push_names(self, parsed, tag: str | None) -> list[tuple]:
        if tag or parsed.tag:
            target = parsed.with_tag(tag or parsed.tag)
            try:
                return [(target, self.images.resolve(str(target)))]
            except NotFound:
                raise NotFound(f"An image does not exist locally with the tag: "
                               f"{parsed.familiar_name}", image=str(target)) from None
        out = []
        for image_id in self.images.records.ids():
            for name in self.images.records.names_of(image_id):
                found = reference.parse(name)
                if found.name == parsed.name and found.tag:
                    out.append((found, image_id))
        if not out:
            raise NotFound(f"An image does not exist locally with the tag: "
                           f"{parsed.familiar_name}", image=parsed.name)
        return sorted(out, key=lambda item: item[0].tag)

    async def registry_search(self, term: str, limit: int, auth: str | None) -> list[dict]:
        """GET /images/search: the registry's v1 search, where it has one."""
        return await asyncio.to_thread(search, self._hosts(), term, limit, decode_auth(auth))

    async def registry_login(self, doc: dict) -> dict:
        """Check credentials against a registry (POST /auth)."""
        creds = Credentials.from_auth_config(doc)
        server = doc.get("serveraddress") or "https://index.docker.io/v1/"
        return await asyncio.to_thread(login, self._hosts(), server, creds)


def _discard_unused(unpacker: _Unpacker, extracted: dict) -> None:
    """Remove temporary snapshots the image store did not commit (a failed register)."""
    for key, _ in extracted.values():
        unpacker.discard(key)

