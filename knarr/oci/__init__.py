"""Plain OCI data, no I/O: runtime-spec configs and (later) image-spec types."""
