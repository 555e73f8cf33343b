"""Docker's list filters: one rule for every resource that takes them."""

from knarr.errors import InvalidArgument


def label_matches(labels: dict, value: str) -> bool:
    """A `label` filter value: `key` is present, or `key=value` is set exactly."""
    if "=" not in value:
        return value in labels
    key, _, wanted = value.partition("=")
    return labels.get(key) == wanted


def matches(checks: dict, filters: dict) -> bool:
    """Whether one document passes `filters` ({key: [values]}), each key tested by
    `checks[key](value)`; an unknown key is refused as Docker refuses it."""
    for key, values in filters.items():
        check = checks.get(key)
        if check is None:
            raise InvalidArgument(f"invalid filter '{key}'", filter=key)
        # Docker's rule: labels must all match; other filters, any of their values.
        if not (all if key == "label" else any)(check(v) for v in values):
            return False
    return True
