"""Named volumes: the local driver's store (directories, or a tmpfs/device/bind mount)."""

from knarr.volumes.store import ANONYMOUS_LABEL, VolumeStore, validate_name

__all__ = ["ANONYMOUS_LABEL", "VolumeStore", "validate_name"]
