"""knarr's benchmark harness: peers and knarr measured side by side in one run.

Only `bench/run.py` (and so `make bench`) uses this package; knarr's tests never
import it.
"""
