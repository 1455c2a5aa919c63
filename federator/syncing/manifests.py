"""The model registry's format: content-addressed blobs and one manifest per version.

Layout under the registry prefix (OCI-style, anchors-sync-reliability A5):
- `blobs/sha256/<hex>`: file contents, named by their SHA-256, so they are immutable and
  shared between versions;
- `models/<name>/versions/<version>.json`: the manifest of one model version (its files with
  digest and size, and metadata), written last and only if absent, so a version is published
  atomically and never overwritten;
- `models/<name>/aliases/<alias>.json`: a small pointer (`{"version": ...}`) moved with
  compare-and-swap on its ETag;
- checkpoints are versions of the model `checkpoints/<namespace>/<job name>`, with
  zero-padded step numbers as versions so the newest sorts last.
This module is pure: names, keys and the manifest's JSON form.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from federator.errors import FederatorError

MEDIA_TYPE = "application/vnd.federator.model.manifest.v1+json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}(/[a-z0-9][a-z0-9._-]{0,99}){0,3}$")
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")  # one '/'-separated part of a name
_SEGMENT_LENGTH = 100
_TAG_LENGTH = 10  # hex digits of SHA-256 that tell apart parts cut to the same prefix
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PATH = re.compile(r"^[^/\x00][^\x00]{0,1023}$")


class ManifestError(ValueError, FederatorError):
    """A manifest, name or reference that does not follow the registry's format.

    A `FederatorError` too: a stored manifest or alias that does not decode is reported in one
    line naming its object (exit 1), not as a crash. The CLI turns a bad name a person typed
    into a `UserError` naming the argument.
    """


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # relative path inside the model, e.g. "weights/model.safetensors"
    digest: str  # "sha256:<hex>"
    size: int

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    version: str
    files: tuple[FileEntry, ...]
    created_at: str  # ISO 8601, UTC
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ManifestError(
            f"model name {name!r}: use lowercase letters, digits, '.', '_', '-', "
            "and at most 3 '/' separators"
        )
    return name


def check_version(version: str) -> str:
    if not _VERSION.match(version):
        raise ManifestError(f"version {version!r}: use letters, digits, '.', '_', '-'")
    return version


def checkpoint_model(job: str) -> str:
    """The model name under which a job's checkpoints are kept: `checkpoints/<namespace>/<name>`
    for the job key `namespace/name` (`checkpoints/<name>` for a key without a namespace).

    The namespace stays its own segment, so `team-a/train` and `team/a-train` never share
    checkpoints. Kubernetes names up to 100 characters are kept as they are; a longer part, or
    one with characters a model name does not allow, is cut and ends in a hash of the whole
    part, so it still fits and still names one job.
    """
    return check_name("/".join(["checkpoints", *map(_checkpoint_segment, job.split("/", 1))]))


def _checkpoint_segment(part: str) -> str:
    if _SEGMENT.match(part):
        return part
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", part.lower()).lstrip("-._")
    tag = hashlib.sha256(part.encode()).hexdigest()[:_TAG_LENGTH]
    room = _SEGMENT_LENGTH - _TAG_LENGTH - 1
    return f"{cleaned[:room]}-{tag}" if cleaned else tag


def checkpoint_version(step: int) -> str:
    if step < 0:
        raise ManifestError(f"checkpoint step must be >= 0, got {step}")
    return f"{step:012d}"


def blob_key(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise ManifestError(f"digest {digest!r}: expected sha256:<64 hex>")
    return f"blobs/sha256/{digest.removeprefix('sha256:')}"


def manifest_key(name: str, version: str) -> str:
    return f"models/{check_name(name)}/versions/{check_version(version)}.json"


def versions_prefix(name: str) -> str:
    return f"models/{check_name(name)}/versions/"


def alias_key(name: str, alias: str) -> str:
    return f"{aliases_prefix(name)}{check_version(alias)}.json"


def aliases_prefix(name: str) -> str:
    return f"models/{check_name(name)}/aliases/"


def parse_alias_key(key: str, name: str) -> str | None:
    """The alias of `name` an alias key (relative to the registry prefix) holds, else None:
    the keys of a model named `NAME/aliases/...` share the prefix and are no alias of NAME."""
    rest = key.removeprefix(aliases_prefix(name))
    if rest == key or not rest.endswith(".json"):
        return None
    alias = rest.removesuffix(".json")
    return alias if _VERSION.fullmatch(alias) else None


def parse_manifest_key(key: str) -> tuple[str, str] | None:
    """(name, version) of a manifest key relative to the registry prefix, else None."""
    if not key.startswith("models/") or not key.endswith(".json"):
        return None
    name, sep, version = key[len("models/") : -len(".json")].rpartition("/versions/")
    return (name, version) if sep and _NAME.match(name) and _VERSION.match(version) else None


def encode(manifest: Manifest) -> bytes:
    document = {
        "schemaVersion": 1,
        "mediaType": MEDIA_TYPE,
        "name": manifest.name,
        "version": manifest.version,
        "createdAt": manifest.created_at,
        "metadata": dict(sorted(manifest.metadata.items())),
        "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in manifest.files],
    }
    return json.dumps(document, indent=1, sort_keys=False).encode()


def decode(raw: bytes, *, where: str) -> Manifest:
    try:
        document: dict[str, Any] = json.loads(raw)
        if document.get("mediaType") != MEDIA_TYPE:
            raise ManifestError(f"mediaType is {document.get('mediaType')!r}")
        files = tuple(_file_entry(item) for item in document["files"])
        return Manifest(
            name=check_name(str(document["name"])),
            version=check_version(str(document["version"])),
            files=files,
            created_at=str(document["createdAt"]),
            metadata={str(k): str(v) for k, v in document.get("metadata", {}).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ManifestError(f"{where}: not a federator model manifest: {error}") from error


def decode_alias(raw: bytes, *, where: str) -> str:
    """The version an alias pointer (`{"version": ...}`) names."""
    try:
        document = json.loads(raw)
        return check_version(str(document["version"]))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ManifestError(f"{where}: not a federator alias pointer: {error}") from error


def _file_entry(item: Mapping[str, Any]) -> FileEntry:
    path, digest, size = str(item["path"]), str(item["digest"]), int(item["size"])
    if not _PATH.match(path) or ".." in path.split("/"):
        raise ManifestError(f"file path {path!r} must be relative and stay inside the model")
    if not _DIGEST.match(digest) or size < 0:
        raise ManifestError(f"file {path!r}: bad digest {digest!r} or size {size}")
    return FileEntry(path, digest, size)


def check_files(files: tuple[FileEntry, ...]) -> tuple[FileEntry, ...]:
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise ManifestError("a model version lists the same file path twice")
    for entry in files:
        _file_entry({"path": entry.path, "digest": entry.digest, "size": entry.size})
    return files
