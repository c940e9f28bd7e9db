"""Where outputs live: a local folder or an S3 prefix, behind one small interface.

Writes are atomic and verified: a local file is written beside its final name and renamed
into place after its size is checked; an S3 object only appears when its upload completes,
and its size is checked with a HEAD. Keys are validated so that no name from CMR can escape
the storage root.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")
_HASH_CHUNK = 1 << 20
_S3_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


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


class LocalStorage:
    """A folder on this machine (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"key {key!r} resolves outside the storage folder {self.root}")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key_of(self, uri: str) -> str | None:
        """The key a ``file://`` URI of this folder names (None for anything else)."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            return None
        path = Path(unquote(parsed.path))
        return path.relative_to(self.root).as_posix() if self.root in path.parents else None

    def _commit(self, write: Any, key: str) -> StoredObject:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.partial")
        try:
            expected_size, expected_sha = write(temp)
            with temp.open("rb") as handle:
                os.fsync(handle.fileno())
            actual = temp.stat().st_size
            if actual != expected_size:
                raise StorageError(f"wrote {actual} bytes to {temp}, expected {expected_size}")
            os.replace(temp, final)
        finally:
            temp.unlink(missing_ok=True)
        return StoredObject(uri=final.as_uri(), size=expected_size, sha256=expected_sha)

    def put_file(self, local: Path, key: str, content_type: str, sha256: str | None = None) -> StoredObject:
        """Store a local file; ``sha256`` when the caller computed it already (not hashed again)."""

        def write(temp: Path) -> tuple[int, str]:
            shutil.copyfile(local, temp)
            return local.stat().st_size, sha256 or sha256_of(local)

        return self._commit(write, key)

    def put_bytes(self, data: bytes, key: str, content_type: str) -> StoredObject:
        def write(temp: Path) -> tuple[int, str]:
            temp.write_bytes(data)
            return len(data), hashlib.sha256(data).hexdigest()

        return self._commit(write, key)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.uri(key)} does not exist") from None
        except OSError as exc:
            raise StorageError(f"reading {self.uri(key)} failed: {exc}") from exc

    def local_copy(self, key: str, scratch: Path) -> Path:
        path = self._path(key)
        if not path.exists():
            raise ObjectNotFound(f"{path.as_uri()} does not exist")
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"deleting {path.as_uri()} failed: {exc}") from exc
        for parent in path.parents:  # no empty folders left behind (S3 has none either)
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def list_keys(self, prefix: str) -> list[str]:
        return [listed.key for listed in self.list_objects(prefix)]

    def list_folders(self, prefix: str) -> list[str]:
        """The folder names directly under ``prefix`` (each with a trailing /)."""
        base = self._path(prefix) if prefix else self.root
        return sorted(f"{p.name}/" for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def list_objects(self, prefix: str) -> list[ListedObject]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        listed = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                listed.append(ListedObject(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime))
        return sorted(listed, key=lambda o: o.key)


class S3Storage:
    """An S3 (or S3-compatible) bucket and prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def key_of(self, uri: str) -> str | None:
        """The key an ``s3://`` URI under this bucket and prefix names (None for anything else)."""
        root = f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"
        return uri[len(root) :] if uri.startswith(root) else None

    def _verify(self, key: str, size: int) -> None:
        head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        if head["ContentLength"] != size:
            raise StorageError(
                f"{self.uri(key)} holds {head['ContentLength']} bytes after upload, expected {size}"
            )

    def put_file(self, local: Path, key: str, content_type: str, sha256: str | None = None) -> StoredObject:
        """Upload a local file; ``sha256`` when the caller computed it already (not hashed again)."""
        size = local.stat().st_size
        try:
            self.client.upload_file(
                str(local), self.bucket, self._key(key), ExtraArgs={"ContentType": content_type}
            )
            self._verify(key, size)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"upload of {local.name} to {self.uri(key)} failed: {exc}") from exc
        return StoredObject(uri=self.uri(key), size=size, sha256=sha256 or sha256_of(local))

    def put_bytes(self, data: bytes, key: str, content_type: str) -> StoredObject:
        import base64

        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                ContentType=content_type,
                ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
            )
        except Exception as exc:
            raise StorageError(f"write to {self.uri(key)} failed: {exc}") from exc
        return StoredObject(uri=self.uri(key), size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def _failed(self, action: str, key: str, exc: Exception) -> StorageError:
        """ObjectNotFound for S3's "no such key" answers, StorageError for everything else."""
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in _S3_NOT_FOUND:
            return ObjectNotFound(f"{self.uri(key)} does not exist")
        return StorageError(f"{action} {self.uri(key)} failed: {exc}")

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            raise self._failed("reading", key, exc) from None

    def local_copy(self, key: str, scratch: Path) -> Path:
        target = scratch / uuid.uuid4().hex / key.rsplit("/", 1)[-1]
        target.parent.mkdir(parents=True)
        try:
            self.client.download_file(self.bucket, self._key(key), str(target))
        except Exception as exc:
            raise self._failed("download of", key, exc) from exc
        return target

    def exists(self, key: str) -> bool:
        """True or False only when S3 said so; any other failure raises StorageError."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            error = self._failed("checking", key, exc)
            if isinstance(error, ObjectNotFound):
                return False
            raise error from exc
        return True

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._failed("deleting", key, exc) from exc

    def list_keys(self, prefix: str) -> list[str]:
        return [listed.key for listed in self.list_objects(prefix)]

    def list_folders(self, prefix: str) -> list[str]:
        """The "folder" names directly under ``prefix`` (a delimiter listing, not every key)."""
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        folders: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full, Delimiter="/")
            for page in pages:
                folders += [p["Prefix"][len(full):] for p in page.get("CommonPrefixes", [])]
        except Exception as exc:
            raise StorageError(f"listing {self.uri(prefix)} failed: {exc}") from exc
        return sorted(folders)

    def list_objects(self, prefix: str) -> list[ListedObject]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        listed: list[ListedObject] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                listed += [
                    ListedObject(obj["Key"][strip:], obj["Size"], obj["LastModified"].timestamp())
                    for obj in page.get("Contents", [])
                ]
        except Exception as exc:
            raise StorageError(f"listing {self.uri(prefix)} failed: {exc}") from exc
        return sorted(listed, key=lambda o: o.key)


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
    kind, bucket, location = parse_storage_url(url)
    if kind == "file":
        return LocalStorage(Path(location))
    from dagster_aws.s3 import S3Resource

    client = S3Resource(
        endpoint_url=s3_endpoint_url, region_name=s3_region, max_attempts=s3_max_attempts
    ).get_client()
    return S3Storage(client, bucket, location)
