"""Planning a COPY or ADD: sources, destination, owner, and the step's cache key.

Sources come from the context (with .dockerignore), from here-documents, or
with `--from` from an earlier stage or an image (read through its layers,
unmounted). The destination is taken relative to WORKDIR and resolved through
the image below, symlinks included, so a COPY into `/bin` where `/bin` is a
link writes where the link points. ADD extracts a local tar archive (plain,
gzip, bzip2, xz) into the destination; a URL is refused, as knarr builds
offline.
"""

import dataclasses
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile

from knarr.build import copying
from knarr.build.context import Context
from knarr.build.layered import LayerStack
from knarr.build.parser import Instruction, ParseError
from knarr.build.words import process_word, process_words
from knarr.errors import InvalidArgument, NotFound

__all__ = ["Plan", "plan"]


@dataclasses.dataclass
class Plan:
    """What a COPY will write and how its cache key is made."""

    items: list[copying.Item]
    stack: LayerStack
    owner: copying.Owner
    chmod: int | None
    key_parts: list
    summary: str
    dest: str
    scratch: list[str] = dataclasses.field(default_factory=list)

    def cleanup(self) -> None:
        """Remove the scratch directories (here-documents, extracted archives)."""
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


def plan(builder, ins: Instruction, state) -> Plan:
    """Work out a COPY/ADD step of `builder` on `state`."""
    env = builder._env(state)
    escape = builder.escape
    if ins.json is not None:
        words = [process_word(w, env, escape) for w in ins.json]
    else:
        words = process_words(ins.rest, env, escape)
    if len(words) < 2:
        raise ParseError(ins.line, f"{ins.keyword} requires at least two arguments, but only "
                         "one was provided. Destination could not be determined.")
    sources, dest = words[:-1], words[-1]
    stack = LayerStack(builder._layer_dirs(state))
    workdir = state.run_config().get("WorkingDir") or "/"
    dest_abs = posixpath.join("/", workdir, dest)
    dest_dir = dest.endswith("/") or dest.endswith("/.") or dest == "." or len(sources) > 1
    p = Plan([], stack, _owner(ins, stack, env, escape), _chmod(ins), [], "", dest_abs)
    try:
        found = _sources(builder, ins, sources, p)
        if len(found) > 1 and not dest_dir:
            raise InvalidArgument(f"When using {ins.keyword} with more than one source file, "
                                  "the destination must be a directory and end with a /")
        target = stack.resolve(dest_abs)
        here = stack.lookup(target) if target else None
        if here is not None and stat.S_ISDIR(here[1].st_mode):
            dest_dir = True
        for kind, src, children, hashed in found:
            _add_items(p, kind, src, children, hashed, target, dest_dir)
    except BaseException:
        p.cleanup()
        raise
    p.key_parts += [dest_abs, ins.flag("chown"), ins.flag("chmod")]
    digest = hashlib.sha256(repr(p.key_parts).encode()).hexdigest()
    kind = "multi" if len(found) > 1 else ("dir" if found[0][0] == "dir" else "file")
    p.summary = f"{kind}:{digest}"
    return p


def _owner(ins: Instruction, stack: LayerStack, env: dict, escape: str) -> copying.Owner:
    spec = ins.flag("chown")
    if not spec:
        return copying.Owner(0, 0)
    spec = process_word(spec, env, escape)
    user, _, group = spec.partition(":")
    uid = _id_of(user, stack, "etc/passwd", "user")
    if group:
        gid = _id_of(group, stack, "etc/group", "group")
    elif user.isdigit():
        gid = uid
    else:
        gid = int(_entry(user, stack, "etc/passwd", "user")[3])
    return copying.Owner(uid, gid)


def _id_of(name: str, stack: LayerStack, table: str, what: str) -> int:
    if name.isdigit():
        return int(name)
    return int(_entry(name, stack, table, what)[2])


def _entry(name: str, stack: LayerStack, table: str, what: str) -> list[str]:
    found = stack.lookup(stack.resolve(table))
    if found is not None and stat.S_ISREG(found[1].st_mode):
        with open(found[0], errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name and len(fields) >= 4:
                    return fields
    raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: can't "
                          f"find uid for user {name}: no such {what}: {name}", name=name)


def _chmod(ins: Instruction) -> int | None:
    value = ins.flag("chmod")
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise InvalidArgument(f"invalid chmod parameter: {value}") from None
    if mode > 0o7777:
        raise InvalidArgument(f"invalid chmod parameter: {value}")
    return mode


def _sources(builder, ins: Instruction, names: list[str], p: Plan) -> list[tuple]:
    """(kind 'dir'|'file', (path, st, movable), children [(rel, path, st)], hashed) each."""
    origin = ins.flag("from")
    if origin is not None:
        return _stage_sources(builder, origin, names, p)
    heredocs = {d.name: d for d in ins.heredocs}
    found = []
    for name in names:
        if name.startswith("<<") and name.lstrip("<-").strip("'\"") in heredocs:
            found.append(_heredoc_source(builder, heredocs[name.lstrip("<-").strip("'\"")],
                                         p))
            continue
        if "://" in name:
            if ins.keyword == "ADD":
                raise InvalidArgument(f"ADD {name}: downloading from a URL is not supported: "
                                      "knarr builds without network access", url=name)
            raise InvalidArgument(f"COPY {name}: source can't be a URL for COPY", url=name)
        for source in builder.context.sources(name):
            found.append(_context_source(builder.context, ins, source, p))
    return found


def _context_source(context: Context, ins: Instruction, source, p: Plan) -> tuple:
    movable = context.owned
    if stat.S_ISDIR(source.st.st_mode):
        under = len(source.rel) + 1 if source.rel else 0  # walk's rels start "<rel>/"
        children = [(s.rel[under:], s.path, s.st) for s in context.walk(source)]
        for rel, path, st in children:
            p.key_parts.append(_describe(context, rel, path, st))
        return "dir", (source.path, source.st, movable), children, True
    if ins.keyword == "ADD" and stat.S_ISREG(source.st.st_mode) and _is_archive(source.path):
        return _archive_source(source, p)
    p.key_parts.append(_describe(context, source.rel, source.path, source.st))
    name = os.path.basename(source.rel) or os.path.basename(source.path)
    return "file", (source.path, source.st, movable), [(name, source.path, source.st)], True


def _describe(context: Context, rel: str, path: str, st: os.stat_result) -> tuple:
    if stat.S_ISREG(st.st_mode):
        return rel, st.st_mode, context.file_hash(context.rel(path), path)
    if stat.S_ISLNK(st.st_mode):
        return rel, st.st_mode, os.readlink(path)
    return rel, st.st_mode, ""


def _is_archive(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _archive_source(source, p: Plan) -> tuple:
    scratch = tempfile.mkdtemp(prefix="add-", dir=os.path.dirname(p.stack.layers[0])
                               if p.stack.layers else None)
    p.scratch.append(scratch)
    with tarfile.open(source.path) as archive:
        archive.extractall(scratch, filter="tar", numeric_owner=True)
    p.owner = copying.Owner(None, None) if p.owner == copying.Owner(0, 0) else p.owner
    st = os.lstat(scratch)
    children = []
    for dirpath, dirnames, filenames in os.walk(scratch):
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            full = os.path.join(dirpath, name)
            children.append((os.path.relpath(full, scratch), full, os.lstat(full)))
    with open(source.path, "rb") as f:
        p.key_parts.append(("archive", source.rel, hashlib.file_digest(f, "sha256").hexdigest()))
    return "archive", (scratch, st, True), children, True


def _heredoc_source(builder, doc, p: Plan) -> tuple:
    scratch = tempfile.mkdtemp(prefix="heredoc-", dir=builder.workdir)
    p.scratch.append(scratch)
    path = os.path.join(scratch, doc.name)
    with open(path, "w") as f:
        f.write(doc.content)
    os.chmod(path, 0o644)
    st = os.lstat(path)
    p.key_parts.append(("heredoc", doc.name, doc.content))
    return "file", (path, st, False), [(doc.name, path, st)], True


def _stage_sources(builder, origin: str, names: list[str], p: Plan) -> list[tuple]:
    state = _stage_state(builder, origin)
    stack = LayerStack(builder._layer_dirs(state))
    found = []
    for name in names:
        rel = stack.resolve(posixpath.normpath("/" + name))
        hit = stack.lookup(rel) if rel else (
            (stack.layers[0], os.lstat(stack.layers[0])) if stack.layers else None)
        if hit is None:
            raise NotFound(f"stat {name}: file does not exist", path=name)
        path, st = hit
        p.key_parts.append(("from", state.chain(), name))
        if stat.S_ISDIR(st.st_mode):
            found.append(("dir", (path, st, False), stack.walk(rel), False))
        else:
            found.append(("file", (path, st, False), [(posixpath.basename(rel), path, st)],
                          False))
    return found


def _stage_state(builder, origin: str):
    for index, stage in enumerate(builder.stages):
        if stage.name == origin.lower() or (origin.isdigit() and int(origin) == index):
            return stage
    if origin.isdigit():
        raise InvalidArgument(f"invalid from flag value {origin}: refers to current build "
                              "stage or a later one")
    return builder._base(origin)


def _add_items(p: Plan, kind: str, src: tuple, children: list, hashed: bool,
               target: str, dest_dir: bool) -> None:
    path, st, movable = src
    if kind in ("dir", "archive"):
        if target and kind == "dir":
            p.items.append(copying.Item(target, path, st))
        for rel, child_path, child_st in children:
            p.items.append(copying.Item(posixpath.join(target, rel), child_path, child_st,
                                        movable))
        return
    name, file_path, file_st = children[0]
    where = posixpath.join(target, name) if dest_dir else target
    if not where:
        raise InvalidArgument("cannot copy a file onto the root directory")
    p.items.append(copying.Item(where, file_path, file_st, movable))
