"""Reading a stack of overlay layer directories as overlay would show them, unmounted.

Layers are given top first. A name is looked up component by component: the
first layer holding it decides; a whiteout (0/0 character device) hides it; a
directory merges with the same directory of the layers below it until one of
them is not a directory, is whited out, or the directory is opaque
(trusted.overlay.opaque=y). Symlinks are resolved inside the stack's root, so
no lookup leaves it. Used to find COPY destinations and `COPY --from` sources
without mounting anything.
"""

import os
import stat

from knarr.errors import InvalidArgument

__all__ = ["LayerStack"]

_OPAQUE = "trusted.overlay.opaque"


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


class LayerStack:
    """The merged view of layer directories (top first)."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = layers

    def _dirs(self, parts: list[str]) -> list[str]:
        """The host directories that make up the merged directory `parts` (top first);
        [] if it is not a directory."""
        active = list(self.layers)
        for part in parts:
            nxt = []
            for layer in active:
                path = os.path.join(layer, part)
                try:
                    st = os.lstat(path)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                    break
                nxt.append(path)
                if _opaque(path):
                    break
            if not nxt:
                return []
            active = nxt
        return active

    def lookup(self, rel: str) -> tuple[str, os.stat_result] | None:
        """(host path, lstat) of the merged entry at `rel` (no symlink followed), or None."""
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if not parts:
            return (self.layers[0], os.lstat(self.layers[0])) if self.layers else None
        for directory in self._dirs(parts[:-1]):
            path = os.path.join(directory, parts[-1])
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            return None if _is_whiteout(st) else (path, st)
        return None

    def listdir(self, rel: str) -> list[str]:
        """The merged names in a directory, sorted."""
        names: set[str] = set()
        hidden: set[str] = set()
        for directory in self._dirs([p for p in rel.split("/") if p not in ("", ".")]):
            for entry in os.scandir(directory):
                if entry.name in names or entry.name in hidden:
                    continue
                if _is_whiteout(entry.stat(follow_symlinks=False)):
                    hidden.add(entry.name)
                else:
                    names.add(entry.name)
        return sorted(names)

    def resolve(self, path: str) -> str:
        """`path` with every symlink resolved inside the stack's root; relative, no leading
        `/`. Components that do not exist are kept as written."""
        resolved: list[str] = []
        pending = [p for p in path.split("/") if p not in ("", ".")]
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            found = self.lookup("/".join(resolved + [part]))
            if found is None or not stat.S_ISLNK(found[1].st_mode):
                resolved.append(part)
                continue
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"resolve {path}: too many levels of symbolic links",
                                      path=path)
            target = os.readlink(found[0])
            if target.startswith("/"):
                resolved.clear()
            pending[:0] = [p for p in target.split("/") if p not in ("", ".")]
        return "/".join(resolved)

    def walk(self, rel: str) -> list[tuple[str, str, os.stat_result]]:
        """Everything below the merged directory `rel`: (relative name under it, host
        path, lstat), parents before children."""
        out = []
        for name in self.listdir(rel):
            child = f"{rel}/{name}" if rel else name
            found = self.lookup(child)
            if found is None:
                continue
            out.append((name, found[0], found[1]))
            if stat.S_ISDIR(found[1].st_mode):
                out += [(f"{name}/{sub}", p, s) for sub, p, s in self.walk(child)]
        return out
