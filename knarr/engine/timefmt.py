"""Times as Docker shows them: RFC 3339 parsing and human durations."""

import calendar
import time

from knarr.errors import InvalidArgument

__all__ = ["parse_timestamp", "human_duration", "parse_since"]


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch from an RFC 3339 UTC time with up to nanoseconds."""
    if not text or text.startswith("0001-"):
        return 0.0
    main, _, frac = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return seconds + (float("0." + frac) if frac else 0.0)


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """A `since`/`until` parameter: unix seconds (with fraction), RFC 3339, or a duration."""
    if value in (None, "", "0"):
        return None
    now = time.time() if now is None else now
    try:
        return float(value)
    except ValueError:
        pass
    units = {"s": 1, "m": 60, "h": 3600}
    if value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - float(value[:-1]) * units[value[-1]]
    try:
        return parse_timestamp(value)
    except ValueError:
        raise InvalidArgument(f"parse time {value!r}: not unix seconds, an RFC 3339 time "
                              "(2006-01-02T15:04:05Z) or a duration (10m)") from None


def human_duration(seconds: float) -> str:
    """Docker's human-readable duration: 'Less than a second', '3 seconds', 'About a minute'."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
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
    return f"{hours // 24 // 365} years"
