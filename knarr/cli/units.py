"""Sizes, durations and times the way Docker's CLI shows and reads them."""

import time

__all__ = ["human_size", "bytes_size", "human_duration", "ram_in_bytes", "parse_duration",
           "parse_nano_cpus", "parse_timestamp", "since_ago", "rfc3339_to_epoch"]

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(size: float, base: float, names: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(names) - 1:
        size /= base
        i += 1
    return size, names[i]


def human_size(size: float, precision: int = 3) -> str:
    """Decimal units with `precision` significant digits: `1.99MB`, `0B`, `1.05kB`."""
    value, unit = _scaled(float(size), 1000.0, _DECIMAL)
    return f"{value:.{precision}g}{unit}"


def bytes_size(size: float) -> str:
    """Binary units with 4 significant digits: `1.5MiB`, `320KiB`, `64MiB`."""
    value, unit = _scaled(float(size), 1024.0, _BINARY)
    return f"{value:.4g}{unit}"


def human_duration(seconds: float) -> str:
    """`Less than a second`, `3 seconds`, `About a minute`, `2 hours`, `3 weeks`."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """`64m`, `1.5g`, `512MiB`, `100` → bytes (binary units); ValueError `invalid size: 'x'`."""
    body = text
    for suffix in ("ib", "iB", "Ib", "IB", "b", "B", "i", "I"):
        if body.endswith(suffix) and len(body) > len(suffix):
            body = body[:-len(suffix)]
            break
    unit = ""
    if body and body[-1].lower() in _RAM_UNITS and not body[-1].isdigit():
        unit, body = body[-1].lower(), body[:-1]
    body = body.rstrip(" ")
    if not body or not all(part.isdigit() and part.isascii() for part in body.split(".")):
        raise ValueError(f"invalid size: '{text}'")
    try:
        return int(float(body) * _RAM_UNITS[unit])
    except ValueError:
        raise ValueError(f"invalid size: '{text}'") from None


def mem_swap_bytes(text: str) -> int:
    """--memory-swap: a size, or -1 for unlimited."""
    return -1 if text == "-1" else ram_in_bytes(text)


mem_swap_bytes.kind = "bytes"
ram_in_bytes.kind = "bytes"

_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration (`1m30s`, `500ms`, `0`) → nanoseconds."""
    error = ValueError(f'time: invalid duration "{text}"')
    s, sign = text, 1
    if s[:1] in "+-" and s:
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    if s == "0":
        return 0
    if not s:
        raise error
    total = 0.0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number, s = s[:i], s[i:]
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit, s = s[:j], s[j:]
        if not number or number == ".":
            raise error
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        try:
            total += float(number) * _DURATION_UNITS[unit]
        except ValueError:
            raise error from None
    return sign * int(total)


parse_duration.kind = "duration"


def parse_nano_cpus(text: str) -> int:
    """--cpus: `1.5` → 1500000000 nano CPUs."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"failed to parse {text} as a rational number") from None
    return int(round(value * 1e9))


parse_nano_cpus.kind = "decimal"


def rfc3339_to_epoch(text: str) -> float:
    """`2024-01-02T03:04:05.123456789Z` (or with an offset) → seconds since the epoch."""
    date, _, rest = text.partition("T")
    year, month, day = (int(x) for x in date.split("-"))
    offset = 0
    if rest.endswith("Z"):
        rest = rest[:-1]
    elif len(rest) > 6 and rest[-6] in "+-" and rest[-3] == ":":
        sign = -1 if rest[-6] == "-" else 1
        offset = sign * (int(rest[-5:-3]) * 3600 + int(rest[-2:]) * 60)
        rest = rest[:-6]
    hms, _, frac = rest.partition(".")
    parts = [int(x) for x in hms.split(":")] if hms else [0, 0, 0]
    while len(parts) < 3:
        parts.append(0)
    seconds = _days_from_civil(year, month, day) * 86400 + parts[0] * 3600 + parts[1] * 60 \
        + parts[2]
    return seconds - offset + (float("0." + frac) if frac.isdigit() else 0.0)


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_timestamp(text: str, now: float | None = None) -> str:
    """--since/--until: a duration ago (`10m`), a unix time, or an RFC 3339 date → unix time."""
    now = time.time() if now is None else now
    if not text:
        return text
    try:
        return str(int(now - parse_duration(text) / 1e9))
    except ValueError:
        pass
    if text.replace(".", "", 1).isdigit():
        return text
    try:
        if "T" not in text:
            text += "T00:00:00"
        return f"{rfc3339_to_epoch(text):.9f}"
    except ValueError:
        raise ValueError(f"invalid value for time: {text!r}") from None


def since_ago(created: float, now: float | None = None) -> str:
    """`3 minutes ago` for a unix time."""
    now = time.time() if now is None else now
    return human_duration(now - created) + " ago"
