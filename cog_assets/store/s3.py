"""An S3 (or S3-compatible) bucket and prefix as object storage. An object only appears when
its upload completes, and its size is checked with a HEAD; S3's "no such key" answers become
ObjectNotFound, every other failure a StorageError (an outage never reads as "absent")."""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path
from typing import Any

from cog_assets.store.objects import (
    ListedObject,
    ObjectNotFound,
    StorageError,
    StoredObject,
    sha256_of,
)

_S3_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


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
