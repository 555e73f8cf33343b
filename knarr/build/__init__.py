"""Dockerfiles into images: the parser (pure), the context, the layer cache and the builder.

The builder reaches the engine only through the small `Backend` it is given
(base images, step containers, image registration), so this package sits on
tier 3 beside `images` and imports neither it nor the engine.
"""

from knarr.build.builder import Backend, Builder, BuildError, Options, RunSpec
from knarr.build.context import Context, extract
from knarr.build.dockerignore import Matcher
from knarr.build.dockerignore import parse as parse_dockerignore
from knarr.build.layers import commit_layer, write_layer_blob
from knarr.build.parser import Dockerfile, Instruction, ParseError, parse

__all__ = ["Backend", "BuildError", "Builder", "Options", "RunSpec", "Context", "extract",
           "Matcher", "parse_dockerignore", "commit_layer", "write_layer_blob", "Dockerfile",
           "Instruction", "ParseError", "parse"]
