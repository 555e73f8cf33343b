"""knarr's OCI runtime: a library the engine calls, and behind `knarr-runtime`.

One module per kernel facility (namespaces, rootfs, devices, mounts, cgroups,
capabilities, seccomp, process, console) and one module per operation
(`container_create`, `container_start`, ...). Operations take the state root
and a container id and return plain data; the CLI only parses and prints.
"""
