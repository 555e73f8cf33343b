"""Image verbs for the API, each run in the engine's image thread."""

import os
import tempfile

from knarr.errors import Conflict, InvalidArgument, NotFound
from knarr.images import archive

__all__ = ["ImagesMixin"]


def _not_found(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}", image=ref)


class ImagesMixin:
    """list, inspect, history, tag, remove, load, save, disk usage."""

    async def _image_call(self, ref: str, fn, *args):
        try:
            return await self.in_image_thread(fn, *args)
        except NotFound:
            raise _not_found(ref) from None

    async def image_list(self, all_: bool = False, dangling: bool | None = None) -> list[dict]:
        """Docker's image summaries."""
        images = await self.in_image_thread(self.images.list, dangling)
        counts = {}
        for record in self.records.all():
            counts[record["Image"]] = counts.get(record["Image"], 0) + 1
        out = []
        for image in images:
            created = image["Created"]
            from knarr.engine.timefmt import parse_timestamp

            out.append({"Id": image["Id"], "ParentId": "", "RepoTags": image["RepoTags"],
                        "RepoDigests": image["RepoDigests"],
                        "Created": int(parse_timestamp(created)) if created else 0,
                        "Size": image["Size"], "SharedSize": -1, "VirtualSize": image["Size"],
                        "Labels": image["Labels"], "Containers": counts.get(image["Id"], 0)})
        return out

    async def image_inspect(self, ref: str) -> dict:
        """Docker's image inspect document."""
        doc = await self._image_call(ref, self.images.inspect, ref)
        doc.setdefault("VirtualSize", doc["Size"])
        doc.setdefault("GraphDriver", {"Name": "overlay2", "Data": {}})
        doc.setdefault("DockerVersion", "")
        doc.setdefault("ContainerConfig", doc["Config"])
        return doc

    async def image_history(self, ref: str) -> list[dict]:
        """The image's history, newest first."""
        steps = await self._image_call(ref, self.images.history, ref)
        from knarr.engine.timefmt import parse_timestamp

        for step in steps:
            step["Created"] = int(parse_timestamp(step["Created"])) if step["Created"] else 0
        return steps

    async def image_tag(self, ref: str, repo: str, tag: str | None) -> None:
        """Give an image another name."""
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        target = f"{repo}:{tag}" if tag else repo
        await self._image_call(ref, self.images.tag, ref, target)
        image_id = await self.in_image_thread(self.images.resolve, target)
        self.events.publish("image", "tag", image_id, {"name": target})

    async def image_remove(self, ref: str, force: bool = False, noprune: bool = False) -> list:
        """Untag or delete, as `docker rmi` does."""
        try:
            image_id = await self.in_image_thread(self.images.resolve, ref)
        except NotFound:
            raise _not_found(ref) from None
        users = [r for r in self.records.all() if r["Image"] == image_id]
        names = (await self.in_image_thread(self.images.names, image_id))[0]
        by_name = ref not in (image_id, image_id.removeprefix("sha256:")) and \
            not image_id.removeprefix("sha256:").startswith(ref)
        if users and not force and not (by_name and len(names) > 1):
            owner = users[0]["Id"]
            raise Conflict(f"conflict: unable to delete {ref} (must be forced) - image is "
                           f"being used by stopped container {owner[:12]}", image=image_id)
        out = await self.in_image_thread(self.images.remove, ref, force, not noprune)
        for item in out:
            action = "untag" if "Untagged" in item else "delete"
            self.events.publish("image", action, image_id, {"name": ref})
        return out

    async def image_load(self, path: str) -> list[dict]:
        """Load a docker-save or OCI tarball spooled at `path`."""
        def run():
            with open(path, "rb") as f:
                return archive.load(self.images, f)

        loaded = await self.in_image_thread(run)
        for image in loaded:
            self.events.publish("image", "load", image["Id"], {"name": image["Id"]})
        return loaded

    async def image_save(self, refs: list[str]) -> str:
        """Write the images to a temporary tarball; return its path (the caller removes it)."""
        fd, path = tempfile.mkstemp(prefix="save-", dir=self.root)
        os.close(fd)

        def run():
            with open(path, "wb") as f:
                archive.save(self.images, refs, f)
            return [(self.images.resolve(ref), ref) for ref in refs]

        try:
            saved = await self.in_image_thread(run)
        except NotFound as exc:
            os.unlink(path)
            raise _not_found(exc.context.get("image", refs[0])) from None
        except BaseException:
            os.unlink(path)
            raise
        for image_id, ref in saved:
            self.events.publish("image", "save", image_id, {"name": ref})
        return path

    async def system_df(self) -> dict:
        """`docker system df` data."""
        images = await self.image_list()
        containers = self.list(all_=True, size=True)
        df = await self.in_image_thread(self.images.df)
        return {"LayersSize": df["Size"], "Images": images, "Containers": containers,
                "Volumes": self.volume_df(), "BuildCache": []}
