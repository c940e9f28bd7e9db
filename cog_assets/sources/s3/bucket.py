"""The objects directly under a source prefix: listed a page at a time, found by stem, copied.

An S3 prefix is listed with ``ListObjectsV2`` (``StartAfter`` resumes where the last page
ended, ``Delimiter='/'`` keeps sub-folders out) and an object is copied with ``IfMatch`` on the
ETag it was listed with, so a copy is always the revision the record describes. A local folder
(``file:///dir/``) stands in for a bucket in development: its "ETag" is the file's size and
modification time. Failures raise :class:`SourceError`, naming the object and what to check.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from cog_assets.sources.s3.config import S3Source

PAGE_SIZE = 1000  # ListObjectsV2's maximum
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20


class SourceError(RuntimeError):
    """The source prefix could not be listed or an object could not be copied."""


class ObjectChanged(SourceError):
    """The object is gone or was overwritten since it was listed."""


@dataclass(frozen=True)
class ListedObject:
    """One object as a listing returns it (no read of the object)."""

    name: str  # the key after the prefix
    size: int
    etag: str  # without quotes
    modified: datetime  # UTC

    @property
    def md5(self) -> str | None:
        """The content's MD5 when the ETag is one (single-part uploads); multipart ETags are not."""
        return self.etag if _MD5.match(self.etag) else None


@dataclass
class Page:
    objects: list[ListedObject]
    sub_folders: list[str]
    more: bool  # another page follows


class Bucket(Protocol):
    def pages(self, start_after: str | None, page_size: int = PAGE_SIZE) -> Iterator[Page]: ...
    def named(self, stem: str) -> list[ListedObject]: ...
    def copy(self, obj: ListedObject, target: Path) -> None: ...


class S3Bucket:
    """A prefix in an S3 (or S3-compatible) bucket, through a boto3 client."""

    def __init__(self, client: Any, source: S3Source) -> None:
        self.client, self.source = client, source
        self.bucket, self.prefix = source.bucket, source.prefix

    def _failed(self, action: str, exc: Exception) -> SourceError:
        return SourceError(
            f"{action} {self.source.url} failed: {exc}. Check that the bucket exists, that the "
            "credentials (AWS_* variables or the task role) may read it, and AWS_ENDPOINT_URL"
        )

    def _listing(self, prefix: str, start_after: str | None, page_size: int) -> Iterator[Page]:
        params = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/",
                  "PaginationConfig": {"PageSize": page_size}}
        if start_after:
            params["StartAfter"] = self.prefix + start_after
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**params):
                objects = [
                    ListedObject(o["Key"][len(self.prefix):], o["Size"], o["ETag"].strip('"'),
                                 o["LastModified"].astimezone(timezone.utc))
                    for o in page.get("Contents", []) if o["Key"] != self.prefix
                ]
                folders = [p["Prefix"][len(self.prefix):] for p in page.get("CommonPrefixes", [])]
                yield Page(objects, folders, bool(page.get("IsTruncated")))
        except Exception as exc:  # botocore's errors: no credentials, no bucket, endpoint down
            raise self._failed("listing", exc) from exc

    def pages(self, start_after: str | None, page_size: int = PAGE_SIZE) -> Iterator[Page]:
        """The prefix's objects in key order after ``start_after`` (a name), a page at a time."""
        return self._listing(self.prefix, start_after, page_size)

    def named(self, stem: str) -> list[ListedObject]:
        """Objects whose names start with ``stem`` (the candidates for one granule)."""
        return [o for page in self._listing(self.prefix + stem, None, PAGE_SIZE) for o in page.objects]

    def copy(self, obj: ListedObject, target: Path) -> None:
        """The object as listed, to ``target``; ObjectChanged if it is gone or was overwritten."""
        key = self.prefix + obj.name
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=f'"{obj.etag}"')
            _write_verified(response["Body"], temp, obj, f"s3://{self.bucket}/{key}")
            temp.replace(target)
        except SourceError:
            raise
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise ObjectChanged(
                    f"s3://{self.bucket}/{key} was overwritten or deleted after it was listed (ETag "
                    f"{obj.etag}); the sensor's next tick sees the change and requests it again"
                ) from None
            raise SourceError(f"copying s3://{self.bucket}/{key} failed: {exc}; retry the partition") from exc
        finally:
            temp.unlink(missing_ok=True)


def _write_verified(body: Any, temp: Path, obj: ListedObject, where: str) -> None:
    """Stream to ``temp``; the size must be the listed one, and the MD5 when the ETag is one."""
    digest = hashlib.md5() if obj.md5 else None
    received = 0
    with temp.open("wb") as handle:
        while chunk := body.read(_CHUNK):
            received += len(chunk)
            if received > obj.size:
                raise SourceError(f"{where}: more than the {obj.size} bytes listed arrived; stopped reading")
            handle.write(chunk)
            if digest is not None:
                digest.update(chunk)
    if received != obj.size:
        raise SourceError(f"{where}: received {received} bytes but the listing says {obj.size} (truncated?)")
    if digest is not None and digest.hexdigest() != obj.md5:
        raise SourceError(f"{where}: MD5 {digest.hexdigest()} differs from its ETag {obj.etag}; nothing was stored")


class LocalFolder:
    """A folder standing in for a bucket (``file:///dir/``); the ETag is size and mtime."""

    def __init__(self, source: S3Source) -> None:
        self.source, self.root = source, Path(source.prefix)

    def _listed(self, entry: os.DirEntry) -> ListedObject:
        stat = entry.stat()
        return ListedObject(entry.name, stat.st_size, f"{stat.st_size:x}-{stat.st_mtime_ns:x}",
                            datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc))

    def _entries(self) -> list[os.DirEntry]:
        try:
            with os.scandir(self.root) as entries:
                return sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            raise SourceError(f"listing {self.source.url} failed: {exc}") from exc

    def pages(self, start_after: str | None, page_size: int = PAGE_SIZE) -> Iterator[Page]:
        entries = [e for e in self._entries() if start_after is None or e.name > start_after]
        for first in range(0, len(entries), page_size):
            chunk = entries[first : first + page_size]
            yield Page([self._listed(e) for e in chunk if e.is_file()], [f"{e.name}/" for e in chunk if e.is_dir()],
                       first + page_size < len(entries))
        if not entries:
            yield Page([], [], False)

    def named(self, stem: str) -> list[ListedObject]:
        return [self._listed(e) for e in self._entries() if e.name.startswith(stem) and e.is_file()]

    def copy(self, obj: ListedObject, target: Path) -> None:
        path = self.root / obj.name
        current = next((o for o in self.named(obj.name) if o.name == obj.name), None)
        if current is None or current.etag != obj.etag:
            raise ObjectChanged(f"{path.as_uri()} was overwritten or deleted after it was listed; "
                                "the sensor's next tick sees the change")
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with path.open("rb") as body:
                _write_verified(body, temp, obj, path.as_uri())
            temp.replace(target)
        finally:
            temp.unlink(missing_ok=True)


def open_bucket(source: S3Source, client: Any | None) -> Bucket:
    """The source's objects: an S3 prefix through ``client``, or a local folder."""
    if source.scheme == "file":
        return LocalFolder(source)
    if client is None:
        raise SourceError(f"{source.url} needs an S3 client (the 's3' resource) to be listed")
    return S3Bucket(client, source)
