"""knarr-runtime: the runc-compatible command line over knarr.runtime."""
