"""Manifest, tag, referrer and catalog endpoints.

A manifest is stored whole in the content store (sha256) and linked into
the repository under the digest it was pushed by (sha256 or sha512), with
the media type it was pushed with, so a GET returns the same bytes and the
same Content-Type. A push is refused (MANIFEST_BLOB_UNKNOWN) while a blob or
child manifest it names is not in the repository; non-distributable layers
(those with `urls`) are exempt, as the spec allows.
"""

import json
import uuid as uuidlib

from knarr.oci import image_spec
from knarr.registry.errors import RegistryError
from knarr.registry.names import check_digest, check_name, check_tag, digest_of, is_digest

__all__ = ["get_manifest", "put_manifest", "delete_manifest", "list_tags", "catalog",
           "referrers"]

MAX_MANIFEST = 8 << 20
_NON_DISTRIBUTABLE = ("nondistributable", "foreign")


def _unknown(reference: str) -> RegistryError:
    return RegistryError("MANIFEST_UNKNOWN", "manifest unknown to registry",
                         {"reference": reference})


def _resolve(app, name: str, reference: str) -> tuple[str, dict]:
    """(digest, record) of a manifest reference, or MANIFEST_UNKNOWN / NAME_UNKNOWN."""
    if not app.storage.repo_exists(name):
        raise RegistryError("NAME_UNKNOWN", "repository name not known to registry",
                            {"name": name})
    if is_digest(reference):
        digest = check_digest(reference)
    else:
        digest = app.storage.tag(name, reference) if _valid_tag(reference) else None
        if digest is None:
            raise _unknown(reference)
    record = app.storage.manifest(name, digest)
    if record is None:
        raise _unknown(reference)
    return digest, record


def _valid_tag(tag: str) -> bool:
    try:
        check_tag(tag)
        return True
    except RegistryError:
        return False


def get_manifest(app, req, name: str, reference: str) -> None:
    """GET/HEAD a manifest by tag or digest, with its media type."""
    check_name(name)
    digest, record = _resolve(app, name, reference)
    try:
        f = app.storage.content.open(record["blob"])
    except Exception:  # noqa: BLE001 - a NotFound here means gc raced a delete
        raise _unknown(reference) from None
    with f:
        headers = {"Docker-Content-Digest": digest, "Etag": f'"{digest}"'}
        req.send_file(200, headers, f, 0, record["size"], record["mediaType"])


def _media_type(req, doc: dict) -> str:
    """The manifest's media type: its own field, else Content-Type, else by its shape."""
    declared = doc.get("mediaType")
    header = (req.headers.get("Content-Type") or "").split(";")[0].strip()
    if declared is not None and not isinstance(declared, str):
        raise RegistryError("MANIFEST_INVALID", "mediaType is not a string")
    if declared and header and header != declared and header != "application/json":
        raise RegistryError("MANIFEST_INVALID", "Content-Type does not match mediaType",
                            {"contentType": header, "mediaType": declared})
    if declared:
        return declared
    if header and header not in ("application/json", "application/octet-stream"):
        return header
    return image_spec.OCI_INDEX if "manifests" in doc else image_spec.OCI_MANIFEST


def _descriptor_digest(desc: object, where: str) -> str:
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise RegistryError("MANIFEST_INVALID", f"{where}: not a descriptor")
    try:
        return check_digest(desc["digest"])
    except RegistryError:
        raise RegistryError("MANIFEST_INVALID", f"{where}: invalid digest",
                            {"digest": desc["digest"]}) from None


def _check_references(app, name: str, doc: dict, media_type: str) -> None:
    """MANIFEST_BLOB_UNKNOWN unless what the manifest names is in the repository."""
    if "manifests" in doc or image_spec.is_index(media_type):
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise RegistryError("MANIFEST_INVALID", "manifests is not a list")
        for i, child in enumerate(children):
            digest = _descriptor_digest(child, f"manifests[{i}]")
            if app.storage.manifest(name, digest) is None:
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", "manifest unknown to registry",
                                    {"digest": digest})
        return
    if "config" not in doc and "layers" not in doc:
        return
    layers = doc.get("layers", [])
    if not isinstance(layers, list):
        raise RegistryError("MANIFEST_INVALID", "layers is not a list")
    wanted = [("config", doc.get("config"))] if "config" in doc else []
    wanted += [(f"layers[{i}]", layer) for i, layer in enumerate(layers)]
    for where, desc in wanted:
        digest = _descriptor_digest(desc, where)
        if desc.get("urls") or any(m in str(desc.get("mediaType")) for m in _NON_DISTRIBUTABLE):
            continue
        if app.storage.blob_link(name, digest) is None:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry",
                                {"digest": digest})


def _parse(body: bytes) -> dict:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError("MANIFEST_INVALID", "manifest is not valid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("MANIFEST_INVALID", "manifest is not a JSON object")
    return doc


def _referrer_descriptor(doc: dict, media_type: str, digest: str, size: int) -> dict:
    desc = {"mediaType": media_type, "digest": digest, "size": size}
    artifact_type = doc.get("artifactType")
    if not artifact_type and isinstance(doc.get("config"), dict):
        artifact_type = doc["config"].get("mediaType")
    if artifact_type:
        desc["artifactType"] = artifact_type
    if isinstance(doc.get("annotations"), dict) and doc["annotations"]:
        desc["annotations"] = doc["annotations"]
    return desc


def put_manifest(app, req, name: str, reference: str) -> None:
    """PUT a manifest by tag or digest (?tag= adds tags); 201 with its digest."""
    check_name(name)
    tags = [check_tag(t) for t in req.query.get("tag", [])]
    if is_digest(reference):
        digest = check_digest(reference)
    else:
        tags.insert(0, check_tag(reference))
        digest = None
    body = req.read_body(MAX_MANIFEST)
    doc = _parse(body)
    media_type = _media_type(req, doc)
    actual = digest_of(body, digest.split(":")[0] if digest else "sha256")
    if digest and actual != digest:
        raise RegistryError("DIGEST_INVALID", "manifest digest did not match",
                            {"digest": digest, "actual": actual})
    digest = actual
    subject = doc.get("subject")
    subject_digest = _descriptor_digest(subject, "subject") if subject is not None else None
    record = {"blob": None, "mediaType": media_type, "size": len(body)}
    if subject_digest:
        record["subject"] = subject_digest
    with app.storage.gc_lock():
        # checked under the lock: a gc cannot take a named blob between check and link
        _check_references(app, name, doc, media_type)
        record["blob"] = app.storage.content.put(body, ref=f"registry-manifest-{uuidlib.uuid4().hex}")
        app.storage.put_manifest(name, digest, record)
        if subject_digest:
            app.storage.add_referrer(name, subject_digest,
                                     _referrer_descriptor(doc, media_type, digest, len(body)))
        for tag in tags:
            app.storage.set_tag(name, tag, digest)
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
    if subject_digest:
        headers["OCI-Subject"] = subject_digest
    if req.query.get("tag"):
        headers["OCI-Tag"] = ", ".join(req.query["tag"])
    req.respond(201, headers)


def delete_manifest(app, req, name: str, reference: str) -> None:
    """DELETE a manifest by digest (and its tags), or just a tag (202)."""
    check_name(name)
    if not app.storage.repo_exists(name):
        raise RegistryError("NAME_UNKNOWN", "repository name not known to registry",
                            {"name": name})
    if is_digest(reference):
        if app.storage.delete_manifest(name, check_digest(reference)) is None:
            raise _unknown(reference)
    elif not _valid_tag(reference) or not app.storage.delete_tag(name, reference):
        raise _unknown(reference)
    req.respond(202)


def _page(req, items: list[str], path: str) -> tuple[list[str], dict]:
    """Apply `last` and `n`; return the page and a Link header when more remain."""
    last = req.arg("last")
    if last:
        items = [i for i in items if i > last]
    n = req.arg("n")
    if n is None or n == "":
        return items, {}
    if not n.isdigit():
        raise RegistryError("UNSUPPORTED", "n must be a non-negative integer",
                            {"n": n}, status=400)
    count = int(n)
    if len(items) <= count:
        return items, {}
    page = items[:count]
    if not page:
        return page, {}
    return page, {"Link": f'<{path}?n={count}&last={page[-1]}>; rel="next"'}


def list_tags(app, req, name: str) -> None:
    """GET the repository's tags, sorted, paginated by n and last."""
    check_name(name)
    if not app.storage.repo_exists(name):
        raise RegistryError("NAME_UNKNOWN", "repository name not known to registry",
                            {"name": name})
    tags, headers = _page(req, app.storage.tags(name), f"/v2/{name}/tags/list")
    req.respond_json(200, {"name": name, "tags": tags}, headers)


def catalog(app, req) -> None:
    """GET every repository name, sorted, paginated by n and last."""
    repos, headers = _page(req, app.storage.repositories(), "/v2/_catalog")
    req.respond_json(200, {"repositories": repos}, headers)


def referrers(app, req, name: str, digest: str) -> None:
    """GET the manifests whose subject is `digest`, as an OCI index."""
    check_name(name)
    check_digest(digest)
    found = app.storage.referrers(name, digest)
    headers = {}
    wanted = req.arg("artifactType")
    if wanted:
        found = [d for d in found if d.get("artifactType") == wanted]
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": image_spec.OCI_INDEX, "manifests": found}
    req.respond_json(200, index, headers, content_type=image_spec.OCI_INDEX)
