"""System routes: /_ping, /version, /info, /events, /system/df."""

import json
import os
import platform
import socket
import time

from knarr.engine import API_VERSION, VERSION
from knarr.engine.stats import host_memory
from knarr.engine.timefmt import parse_since

__all__ = ["ROUTES"]

MIN_API_VERSION = "1.24"


async def ping(engine, request, responder) -> None:
    headers = {"Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
               "Pragma": "no-cache"}
    if request.method == "HEAD":
        await responder.send(200, b"", "text/plain; charset=utf-8",
                             {**headers, "Content-Length": "0"})
        return
    await responder.send(200, b"OK", "text/plain; charset=utf-8", headers)


def _version_doc() -> dict:
    uname = os.uname()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine)
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
               "Os": "linux", "Arch": arch, "KernelVersion": uname.release,
               "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
               "BuildTime": "", "Experimental": "false"}
    return {"Platform": {"Name": "knarr"},
            "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
            "Version": VERSION, **{k: v for k, v in details.items() if k != "Experimental"}}


async def version(engine, request, responder) -> None:
    await responder.json(200, _version_doc())


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


async def info(engine, request, responder) -> None:
    containers = engine.list(all_=True)
    states = [c["State"] for c in containers]
    images = await engine.image_list()
    from knarr.runtime import cgroups

    layout = cgroups.current_layout()
    uname = os.uname()
    doc = {
        "ID": engine.daemon_id(),
        "Containers": len(containers), "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
        "Images": len(images), "Driver": "overlay2", "DriverStatus": [["Backing Filesystem",
                                                                     "extfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Log": ["json-file", "none"]},
        "MemoryLimit": True, "SwapLimit": False, "KernelMemory": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True,
        "PidsLimit": True, "OomKillDisable": True, "IPv4Forwarding": True,
        "Debug": False, "NFd": len(os.listdir("/proc/self/fd")), "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if layout == "v2" else "1",
        "NEventsListener": len(engine.events.subscribers),
        "KernelVersion": uname.release, "OperatingSystem": _os_name(),
        "OSVersion": "", "OSType": "linux", "Architecture": uname.machine,
        "NCPU": os.cpu_count() or 1, "MemTotal": host_memory(),
        "IndexServerAddress": "https://index.docker.io/v1/", "RegistryConfig": {},
        "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": VERSION, "Runtimes": {"knarr": {"path": "knarr-runtime"}},
        "DefaultRuntime": "knarr", "LiveRestoreEnabled": True, "Isolation": "",
        "InitBinary": "", "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [], "DockerRootDir": engine.root, "HttpProxy": "", "HttpsProxy": "",
        "NoProxy": "",
    }
    await responder.json(200, doc)


async def events(engine, request, responder) -> None:
    since = parse_since(request.q("since"))
    until = parse_since(request.q("until"))
    filters = request.q_json("filters")
    await responder.start_stream(200, "application/json")
    async for event in engine.events_stream(since, until, filters):
        await responder.chunk(json.dumps(event).encode() + b"\n")
    await responder.end()


async def system_df(engine, request, responder) -> None:
    await responder.json(200, await engine.system_df())


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", system_df),
]
