"""knarrd: the daemon's entry point, wiring the engine to the API server."""
