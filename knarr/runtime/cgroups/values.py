"""Reading values out of OCI `linux.resources`, checking their types on the way.

A wrong type is the config's fault, not the kernel's, so it is reported with
the config field's name before any control file is touched.
"""

from knarr.errors import InvalidArgument

__all__ = ["boolean", "integer", "items", "rdma_lines", "section", "text"]

_PREFIX = "linux.resources"


def _bad(field: str, expected: str, value: object) -> InvalidArgument:
    name = f"{_PREFIX}.{field}"
    return InvalidArgument(f"config.json: {name}: expected {expected}, got "
                           f"{type(value).__name__}", field=name)


def section(resources: dict, key: str) -> dict:
    """The object at `resources[key]`, or {} when it is absent."""
    value = resources.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(key, "object", value)
    return value


def items(resources: dict, key: str, field: str = "") -> list[dict]:
    """The array of objects at `resources[key]`, or [] when it is absent."""
    field = field or key
    value = resources.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(field, "array", value)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _bad(f"{field}[{i}]", "object", item)
    return value


def integer(obj: dict, key: str, field: str, unset_zero: bool = False) -> int | None:
    """An integer field, or None when absent (and, with `unset_zero`, when 0).

    runc reads a 0 in most of these fields as "not set", since Go cannot tell
    a missing number from a zero one; configs written for it rely on that.
    """
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"{field}.{key}", "integer", value)
    if unset_zero and value == 0:
        return None
    return value


def boolean(obj: dict, key: str, field: str) -> bool | None:
    """A boolean field, or None when absent."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _bad(f"{field}.{key}", "boolean", value)
    return value


def text(obj: dict, key: str, field: str) -> str | None:
    """A string field, or None when absent or empty."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(f"{field}.{key}", "string", value)
    return value


def rdma_lines(resources: dict) -> list[str]:
    """`rdma` as lines for rdma.max (the same format in v1 and v2)."""
    lines = []
    for device, limits in section(resources, "rdma").items():
        if not isinstance(limits, dict):
            raise _bad(f"rdma.{device}", "object", limits)
        handles = integer(limits, "hcaHandles", f"rdma.{device}")
        objects = integer(limits, "hcaObjects", f"rdma.{device}")
        parts = [device]
        if handles is not None:
            parts.append(f"hca_handle={handles}")
        if objects is not None:
            parts.append(f"hca_object={objects}")
        if len(parts) > 1:
            lines.append(" ".join(parts))
    return lines
