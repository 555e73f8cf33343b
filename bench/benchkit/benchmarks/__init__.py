"""The registered benchmarks: one module each, registering itself on import.

To add a benchmark, write a module here with a `@register(...)` prepare function
and add its name to MODULES, in the order `bench/run.py` should run it.
"""

import importlib

MODULES = ["runtime_run", "engine_run", "engine_hello", "engine_exec", "engine_stats",
           "engine_cp", "image_unpack", "image_load", "registry_copy", "engine_build",
           "image_pull"]

for _module in MODULES:
    importlib.import_module(f"{__name__}.{_module}")
