"""A folder on this machine as object storage (the embedded default): atomic, verified writes
(a temporary name beside the final one, fsync, size check, rename)."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from cog_assets.store.objects import (
    ListedObject,
    ObjectNotFound,
    StorageError,
    StoredObject,
    sha256_of,
)


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
