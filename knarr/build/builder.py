"""The builder: a parsed Dockerfile and a context in, an image out, step by step.

It prints what Docker's classic builder prints (`Step 2/5 : RUN ...`,
` ---> Using cache`, ` ---> 3f2a...`) through `output`, keeps every step's
result in the cache, and registers only the final image, so a failed build
tags nothing. What needs the engine (base images, step containers, image
registration) goes through a `Backend` the engine passes in; the builder
itself only touches layer directories, blobs and its cache.
"""

import dataclasses
import datetime
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from typing import Protocol

from knarr.build import copying, dispatch, layers
from knarr.build.cache import Cache, key_of
from knarr.build.context import Context
from knarr.build.layered import LayerStack
from knarr.build.parser import Dockerfile, Instruction, ParseError, parse, parse_line
from knarr.build.words import process_word
from knarr.content import ContentStore
from knarr.errors import InvalidArgument, KnarrError, NotFound
from knarr.oci import digest as digests
from knarr.oci import image_spec
from knarr.snapshots import Snapshotter

__all__ = ["Backend", "Options", "Builder", "BuildError", "RunSpec"]

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


class BuildError(KnarrError):
    """A step failed; `code` is what Docker's client exits with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass
class RunSpec:
    """A step container: its parent layer (chain id), image config, argv and env."""

    parent: str | None
    base_image: str
    config: dict
    argv: list[str]
    env: list[str]
    network: str = "none"


class Backend(Protocol):
    """What the engine provides to a build."""

    snapshots: Snapshotter
    content: ContentStore

    def image(self, ref: str, pull: bool) -> tuple[str, dict, list[dict]]:
        """(id, config, manifest layer descriptors) of an image."""

    def run(self, spec: RunSpec, output: Callable[[str], None]) -> tuple[int, str, str]:
        """Run a step container to its end; (exit code, container id, snapshot key)."""

    def remove(self, container_id: str) -> None:
        """Remove a step container (its snapshot may already be gone)."""

    def register(self, manifest: bytes, config: bytes, names: list[str]) -> str:
        """Store an image whose layers are committed; tag it; return its id."""


@dataclasses.dataclass
class Options:
    """The knobs of `docker build`."""

    dockerfile: str = "Dockerfile"
    tags: list[str] = dataclasses.field(default_factory=list)
    build_args: dict[str, str | None] = dataclasses.field(default_factory=dict)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    quiet: bool = False
    network: str = "none"


@dataclasses.dataclass
class State:
    """A stage as built so far."""

    config: dict
    layers: list[dict]
    base_image: str = ""
    name: str | None = None
    args: dict[str, str | None] = dataclasses.field(default_factory=dict)
    cmd_set: bool = False

    def id(self) -> str:
        return digests.sha256_of(_config_bytes(self.config))

    def chain(self) -> str | None:
        diff_ids = self.config["rootfs"]["diff_ids"]
        return digests.chain_ids(diff_ids)[-1] if diff_ids else None

    def run_config(self) -> dict:
        return self.config.setdefault("config", {})


def _config_bytes(config: dict) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class Builder:
    """One build."""

    def __init__(self, backend: Backend, context: Context, options: Options,
                 output: Callable[[str], None], cache_dir: str, workdir: str) -> None:
        self.backend, self.context, self.options = backend, context, options
        self.out = (lambda text: None) if options.quiet else output
        self.cache = Cache(cache_dir, backend.content, backend.snapshots)
        self.workdir = workdir
        self.stages: list[State] = []
        self.used_args: set[str] = set()
        self.step, self.total = 0, 0

    # -- the whole build ------------------------------------------------------

    def build(self) -> str:
        """Build the target stage; return the image id."""
        dockerfile = self._dockerfile()
        meta, stages = _split_stages(dockerfile)
        stages = self._up_to_target(stages)
        if self.options.labels:
            text = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}"
                                       for k, v in sorted(self.options.labels.items()))
            stages[-1].append(parse_line(text, 0, dockerfile.escape))
        self.total = len(meta) + sum(len(s) for s in stages)
        self.escape = dockerfile.escape
        meta_args = self._meta_args(meta)
        state = None
        for instructions in stages:
            state = self._stage(instructions, meta_args)
            self.stages.append(state)
        assert state is not None
        unused = sorted(set(self.options.build_args) - self.used_args - set(meta_args))
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                     "consumed\n")
        return self._register(state)

    def _dockerfile(self) -> Dockerfile:
        text = self.context.read_text(self.options.dockerfile)
        if text is None:
            raise NotFound("Cannot locate specified Dockerfile: "
                           f"{self.options.dockerfile}", path=self.options.dockerfile)
        dockerfile = parse(text)
        if not dockerfile.instructions:
            raise InvalidArgument("the Dockerfile (Dockerfile) cannot be empty")
        return dockerfile

    def _up_to_target(self, stages: list[list[Instruction]]) -> list[list[Instruction]]:
        if not self.options.target:
            return stages
        for index, instructions in enumerate(stages):
            if _stage_name(instructions[0]) == self.options.target.lower():
                return stages[:index + 1]
        raise InvalidArgument(f"failed to reach build target {self.options.target} in "
                              "Dockerfile")

    def _meta_args(self, meta: list[Instruction]) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for ins in meta:
            self._announce(ins)
            for key, value in dispatch.name_value_pairs(ins, _known(values), self.escape):
                values[key] = self.options.build_args.get(key, value) \
                    if key in self.options.build_args else value
        return values

    def _announce(self, ins: Instruction) -> None:
        self.step += 1
        self.out(f"Step {self.step}/{self.total} : {ins.original}\n")

    # -- a stage ----------------------------------------------------------------

    def _stage(self, instructions: list[Instruction], meta_args: dict) -> State:
        state = _with_line(instructions[0], self._from, instructions[0], meta_args)
        for ins in instructions[1:]:
            self._announce(ins)
            state = _with_line(ins, self._dispatch, ins, state, meta_args)
        return state

    def _from(self, ins: Instruction, meta_args: dict) -> State:
        self._announce(ins)
        words = [process_word(w, _known(meta_args), self.escape) for w in ins.rest.split()]
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise ParseError(ins.line, "FROM requires either one or three arguments")
        name = words[2].lower() if len(words) == 3 else None
        state = self._base(words[0])
        state.name = name
        self.out(f" ---> {_short(state.id())}\n" if state.layers or state.base_image
                 else "")
        triggers = state.run_config().pop("OnBuild", None) or []
        if triggers:
            self.out(f"# Executing {len(triggers)} build trigger"
                     f"{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                state = self._dispatch(parse_line(text, ins.line, self.escape), state,
                                       meta_args)
        return state

    def _base(self, ref: str) -> State:
        for stage in self.stages:
            if stage.name == ref.lower():
                return State(json.loads(_config_bytes(stage.config)), list(stage.layers),
                             stage.base_image)
        if ref == "scratch":
            machine = os.uname().machine
            return State({"architecture": _ARCH.get(machine, machine), "os": "linux",
                          "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
                          "history": []}, [])
        image_id, config, descs = self.backend.image(ref, self.options.pull)
        config = json.loads(json.dumps(config))
        config.setdefault("config", {})
        config.setdefault("history", [])
        return State(config, [dict(d) for d in descs], image_id)

    def _env(self, state: State) -> dict[str, str]:
        env = {k: v for k, v in state.args.items() if v is not None}
        for item in state.run_config().get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        return env

    def _dispatch(self, ins: Instruction, state: State, meta_args: dict) -> State:
        if ins.keyword == "FROM":
            raise ParseError(ins.line, "FROM is not allowed here")
        if ins.keyword == "ARG":
            return self._arg(ins, state, meta_args)
        if ins.keyword == "MAINTAINER":
            return self._config_step(ins, state, "MAINTAINER " + ins.rest,
                                     lambda s: s.config.__setitem__("author", ins.rest))
        if ins.keyword == "RUN":
            return self._run(ins, state)
        if ins.keyword in ("COPY", "ADD"):
            return self._copy(ins, state)
        if ins.keyword == "WORKDIR":
            return self._workdir(ins, state)
        env = self._env(state)
        config = json.loads(json.dumps(state.run_config()))
        comment = dispatch.apply(ins, config, env, self.escape)

        def change(new: State) -> None:
            new.config["config"] = json.loads(json.dumps(config))
            if ins.keyword == "CMD":
                new.cmd_set = True
            if ins.keyword == "ENTRYPOINT" and not new.cmd_set:
                new.config["config"].pop("Cmd", None)
        return self._config_step(ins, state, comment, change)

    def _arg(self, ins: Instruction, state: State, meta_args: dict) -> State:
        pairs = dispatch.name_value_pairs(ins, self._env(state), self.escape)
        for key, value in pairs:
            if key in self.options.build_args:
                value = self.options.build_args[key]
            elif value is None and key in meta_args:
                value = meta_args[key]
            state.args[key] = value
            self.used_args.add(key)
        shown = " ".join(k if v is None else f"{k}={v}" for k, v in pairs)
        return self._config_step(ins, state, f"ARG {shown}", lambda s: None)

    # -- steps --------------------------------------------------------------------

    def _cached(self, state: State, key: str) -> State | None:
        if self.options.no_cache:
            return None
        found = self.cache.get(key)
        if found is None:
            return None
        self.out(" ---> Using cache\n")
        return dataclasses.replace(state, config=found[0], layers=found[1],
                                   args=dict(state.args))

    def _finish(self, state: State, key: str, hit: bool = False) -> State:
        if not hit:
            self.cache.put(key, state.config, state.layers)
        self.out(f" ---> {_short(state.id())}\n")
        return state

    def _config_step(self, ins: Instruction, state: State, comment: str, change) -> State:
        key = key_of(state.id(), "nop", comment, sorted(state.args.items()), state.cmd_set)
        hit = self._cached(state, key)
        if hit is not None:
            if ins.keyword == "CMD":
                hit.cmd_set = True
            self.out(f" ---> {_short(hit.id())}\n")
            return hit
        state = self._fork(state)
        change(state)
        self._history(state, f"/bin/sh -c #(nop)  {comment}", empty=True)
        return self._finish(state, key)

    def _history(self, state: State, created_by: str, empty: bool) -> None:
        now = _now()
        state.config["created"] = now
        entry: dict = {"created": now, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        state.config.setdefault("history", []).append(entry)

    def _add_layer(self, state: State, key: str) -> bool:
        """Commit the active snapshot `key` as the next layer of `state`; an empty one is
        dropped instead, as Docker keeps no empty layers (False then)."""
        snaps = self.backend.snapshots
        if not os.listdir(snaps.path(key)):
            snaps.remove(key)
            return False
        desc, diff_id, _ = layers.commit_layer(self.backend.snapshots, key, state.chain())
        state.layers.append(desc)
        state.config["rootfs"]["diff_ids"].append(diff_id)
        return True

    def _fork(self, state: State) -> State:
        return dataclasses.replace(state, config=json.loads(_config_bytes(state.config)),
                                   layers=[dict(d) for d in state.layers],
                                   args=dict(state.args))

    def _run(self, ins: Instruction, state: State) -> State:
        run_config = state.run_config()
        shell = run_config.get("Shell") or dispatch.DEFAULT_SHELL
        rest = ins.rest
        only = ins.heredocs[0] if len(ins.heredocs) == 1 else None
        if only is not None and re.fullmatch(r"<<-?\s*(['\"]?)" + only.name + r"\1", rest):
            rest = only.content  # the here-document is the script itself
        else:
            for doc in ins.heredocs:  # the shell reads the here-documents itself
                rest += f"\n{doc.content}{doc.name}"
        argv = list(ins.json) if ins.json is not None else [*shell, rest]
        args = sorted((k, v) for k, v in state.args.items()
                      if v is not None and k not in _env_keys(run_config))
        shown = " ".join(argv)
        if args:
            shown = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in args) + " " + shown
        key = key_of(state.id(), "run", argv, args)
        hit = self._cached(state, key)
        if hit is not None:
            return self._finish(hit, key, hit=True)
        state = self._fork(state)
        env = list(run_config.get("Env") or []) + [f"{k}={v}" for k, v in args]
        spec = RunSpec(state.chain(), state.base_image, run_config, argv, env,
                       self.options.network)
        code, cid, snapshot = self.backend.run(spec, self.out)
        try:
            if code != 0:
                raise BuildError(f"The command '{' '.join(argv)}' returned a non-zero code: "
                                 f"{code}", code)
            below = LayerStack(self._layer_dirs(state))
            layers.drop_runtime_stubs(self.backend.snapshots.path(snapshot), below)
            added = self._add_layer(state, snapshot)
        finally:
            self.backend.remove(cid)
        self.out(f"Removing intermediate container {cid[:12]}\n")
        self._history(state, shown, empty=not added)
        return self._finish(state, key)

    def _layer_dirs(self, state: State) -> list[str]:
        chain = state.chain()
        if chain is None:
            return []
        snaps = self.backend.snapshots
        return [snaps.path(chain)] + [snaps.path(r["key"]) for r in snaps.parents(chain)]

    def _workdir(self, ins: Instruction, state: State) -> State:
        config = json.loads(json.dumps(state.run_config()))
        comment = dispatch.apply(ins, config, self._env(state), self.escape)
        key = key_of(state.id(), "workdir", comment)
        hit = self._cached(state, key)
        if hit is not None:
            return self._finish(hit, key, hit=True)
        state = self._fork(state)
        state.config["config"] = config
        workdir = config["WorkingDir"].lstrip("/")
        stack = LayerStack(self._layer_dirs(state))
        layer = self._new_layer(state)
        with layer as upper:
            target = stack.resolve(workdir)
            if target and stack.lookup(target) is None:
                copying.make_dirs(upper, stack, target)
        self._history(state, f"/bin/sh -c #(nop) WORKDIR {config['WorkingDir']}",
                      not layer.added)
        return self._finish(state, key)

    def _new_layer(self, state: State):
        builder = self

        class _Layer:
            def __enter__(self):
                self.key = f"build-{os.getpid()}-{secrets.token_hex(6)}"
                builder.backend.snapshots.prepare(self.key, state.chain())
                return builder.backend.snapshots.path(self.key)

            def __exit__(self, kind, exc, tb):
                if kind is not None:
                    builder.backend.snapshots.remove(self.key)
                    return False
                self.added = builder._add_layer(state, self.key)
                return False
        return _Layer()

    # -- COPY and ADD -------------------------------------------------------------

    def _copy(self, ins: Instruction, state: State) -> State:
        from knarr.build import copysteps

        plan = copysteps.plan(self, ins, state)
        key = key_of(state.id(), ins.keyword, plan.key_parts)
        hit = self._cached(state, key)
        if hit is not None:
            plan.cleanup()
            return self._finish(hit, key, hit=True)
        state = self._fork(state)
        layer = self._new_layer(state)
        try:
            with layer as upper:
                copying.write_items(upper, plan.stack, plan.items, plan.owner, plan.chmod)
        finally:
            plan.cleanup()
        self._history(state, f"/bin/sh -c #(nop) {ins.keyword} {plan.summary} in "
                             f"{plan.dest} ", empty=not layer.added)
        return self._finish(state, key)

    # -- the end ------------------------------------------------------------------

    def _register(self, state: State) -> str:
        config_bytes = _config_bytes(state.config)
        config_digest = digests.sha256_of(config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": image_spec.OCI_MANIFEST,
                    "config": image_spec.descriptor(image_spec.OCI_CONFIG, config_digest,
                                                    len(config_bytes)),
                    "layers": state.layers}
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        if not self.backend.content.exists(config_digest):
            self.backend.content.put(config_bytes, expected=config_digest)
        return self.backend.register(manifest_bytes, config_bytes, self.options.tags)


def _with_line(ins: Instruction, step, *args):
    """Run a step; an error other than a failed RUN or a parse error gets the line."""
    try:
        return step(*args)
    except (BuildError, ParseError):
        raise
    except KnarrError as exc:
        what = f"{ins.keyword} failed: " if ins.keyword in ("COPY", "ADD") else ""
        raise type(exc)(f"Dockerfile line {ins.line}: {what}{exc}", **exc.context) from None


def _env_keys(run_config: dict) -> set[str]:
    return {e.partition("=")[0] for e in run_config.get("Env") or []}


def _known(values: dict) -> dict[str, str]:
    return {k: v for k, v in values.items() if v is not None}


def _stage_name(ins: Instruction) -> str | None:
    words = ins.rest.split()
    return words[2].lower() if len(words) == 3 and words[1].lower() == "as" else None


def _split_stages(dockerfile: Dockerfile) -> tuple[list[Instruction], list[list[Instruction]]]:
    meta: list[Instruction] = []
    stages: list[list[Instruction]] = []
    for ins in dockerfile.instructions:
        if ins.keyword == "FROM":
            stages.append([ins])
        elif not stages:
            if ins.keyword != "ARG":
                raise ParseError(ins.line, "no build stage in current context")
            meta.append(ins)
        else:
            stages[-1].append(ins)
    if not stages:
        raise ParseError(dockerfile.instructions[-1].line, "no build stage in current context")
    return meta, stages


def temporary_dir(parent: str, prefix: str) -> str:
    """A private scratch directory (removed by the caller)."""
    os.makedirs(parent, mode=0o700, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=parent)

