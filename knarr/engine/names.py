"""Container ids and names: 64-hex ids, Docker-style names, random adjective_name."""

import os
import re

from knarr.errors import InvalidArgument

__all__ = ["new_id", "random_name", "validate_name", "NAME_PATTERN"]

NAME_PATTERN = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VALID = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# Our own lists: moods of the sea, and sailors, shipwrights and navigators.
_ADJECTIVES = (
    "brave", "calm", "clever", "eager", "fair", "fearless", "gentle", "gallant", "hardy",
    "keen", "kind", "lucky", "merry", "nimble", "proud", "quiet", "rapid", "salty",
    "sharp", "silent", "steady", "stout", "swift", "tidy", "trusty", "vigilant", "wary",
    "wise", "windy", "bold", "bright", "restless",
)
_NAMES = (
    "leif", "bjarni", "gudrid", "freydis", "thorfinn", "ingolf", "gardar", "naddod",
    "floki", "erik", "aud", "ohthere", "wulfstan", "pytheas", "hanno", "zheng", "magellan",
    "cook", "nansen", "amundsen", "bering", "tasman", "cabot", "vespucci", "dias",
    "harrison", "mercator", "bowditch", "maury", "heyerdahl", "slocum", "earhart",
)


def new_id() -> str:
    """A fresh 64-hex container (or exec) id that does not look like a number."""
    while True:
        value = os.urandom(32).hex()
        if not value[:12].isdigit():  # a short id of digits only reads like a number
            return value


def random_name(taken) -> str:
    """A free `adjective_name`; a digit suffix after a few clashes, as Docker does."""
    for attempt in range(20):
        a = _ADJECTIVES[int.from_bytes(os.urandom(2), "big") % len(_ADJECTIVES)]
        n = _NAMES[int.from_bytes(os.urandom(2), "big") % len(_NAMES)]
        name = f"{a}_{n}" + (str(attempt) if attempt > 5 else "")
        if not taken(name):
            return name
    return "knarr_" + os.urandom(6).hex()


def validate_name(name: str) -> str:
    """Return the name without its leading slash; InvalidArgument if Docker would refuse it."""
    if not _VALID.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only {NAME_PATTERN} are "
                              "allowed", name=name)
    return name.lstrip("/")
