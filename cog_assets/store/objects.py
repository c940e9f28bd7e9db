"""Where outputs live: a local folder or an S3 prefix, behind one small interface.

Writes are atomic and verified: a local file is written beside its final name and renamed
into place after its size is checked; an S3 object only appears when its upload completes,
and its size is checked with a HEAD. Keys are validated so that no name from CMR can escape
the storage root.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")
_HASH_CHUNK = 1 << 20


class StorageError(RuntimeError):
    """A read or write against the configured storage failed."""


class ObjectNotFound(StorageError):
    """The key holds no object: distinct from every other failure, which must never be taken
    for "absent" (a brief S3 outage must not look like a deleted object)."""


def storage_key(*parts: str) -> str:
    """Join validated path segments; refuses '..', slashes, spaces and other surprises."""
    for part in parts:
        for segment in part.split("/"):
            if not _SEGMENT.match(segment) or segment in {".", ".."} or ".." in segment:
                raise StorageError(
                    f"refusing storage key segment {segment!r} of {'/'.join(parts)!r}: only "
                    "letters, digits, '.', '_', '-', '+' are allowed so objects stay under the "
                    "storage prefix"
                )
    return "/".join(parts)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredObject:
    uri: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ListedObject:
    """A key as a listing returns it (no read of the object)."""

    key: str
    size: int
    modified: float  # seconds since the epoch


class Storage(Protocol):
    def uri(self, key: str) -> str: ...
    def key_of(self, uri: str) -> str | None: ...
    def put_file(self, local: Path, key: str, content_type: str, sha256: str | None = None) -> StoredObject: ...
    def put_bytes(self, data: bytes, key: str, content_type: str) -> StoredObject: ...
    def get_bytes(self, key: str) -> bytes: ...
    def local_copy(self, key: str, scratch: Path) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def list_objects(self, prefix: str) -> list[ListedObject]: ...
    def list_folders(self, prefix: str) -> list[str]: ...


def parse_storage_url(url: str) -> tuple[str, str, str]:
    """('file', '', '/abs/dir') or ('s3', bucket, prefix); anything else is a clear error."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise StorageError(
                f"COG_ASSETS_STORAGE={url!r}: a local folder must be written file:///abs/dir"
            )
        return "file", "", unquote(parsed.path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"COG_ASSETS_STORAGE={url!r}: expected s3://bucket/prefix")
        return "s3", parsed.netloc, parsed.path.strip("/")
    raise StorageError(
        f"COG_ASSETS_STORAGE={url!r} is neither file:///abs/dir nor s3://bucket/prefix"
    )


def open_storage(
    url: str, s3_endpoint_url: str | None = None, s3_region: str | None = None, s3_max_attempts: int = 5
) -> Storage:
    """The storage a COG_ASSETS_STORAGE URL names.

    S3 credentials come from the standard AWS variables or the instance role, never config.
    ``s3_max_attempts`` bounds boto3's own retries (with backoff) per S3 call.
    """
    from cog_assets.store.local import LocalStorage
    from cog_assets.store.s3 import S3Storage

    kind, bucket, location = parse_storage_url(url)
    if kind == "file":
        return LocalStorage(Path(location))
    from dagster_aws.s3 import S3Resource

    client = S3Resource(
        endpoint_url=s3_endpoint_url, region_name=s3_region, max_attempts=s3_max_attempts
    ).get_client()
    return S3Storage(client, bucket, location)
