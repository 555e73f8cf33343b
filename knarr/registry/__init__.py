"""knarr's registry server: the OCI distribution spec v1.1 on knarr's content store.

`knarr-registry serve` runs it; `knarr-registry gc` collects unreferenced blobs.
The package is an app: it imports only knarr.oci, knarr.content and knarr.errors.
"""
