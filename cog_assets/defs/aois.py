"""The AOI folder (``COG_ASSETS_AOIS``, default ``<storage>/aois/``) as a resource.

Users drop ``<id>.geojson`` files there; ``<id>.status.json`` beside each file says what the
platform made of it: ``pending`` (registered, statistics being computed), ``saved`` (with the
time and row counts per dataset), ``invalid`` (with the reason, naming the file), or
``removed`` (the file is gone: no longer synced, its statistics are kept).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from cog_assets.analysis.aoi import AOI_SUFFIX, Aoi, parse_aoi
from cog_assets.store.objects import Storage, StorageError, open_storage

STATUS_SUFFIX = ".status.json"


def default_aois_url(storage_url: str) -> str:
    return storage_url.rstrip("/") + "/aois"


class AoiFolder(ConfigurableResource):
    """Lists, reads and annotates the AOI files."""

    url: str = Field(description="file:///abs/dir or s3://bucket/prefix holding <id>.geojson files")
    s3_endpoint_url: str | None = Field(default=None, description="AWS_ENDPOINT_URL")
    s3_region: str | None = Field(default=None, description="AWS_REGION")

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.url, self.s3_endpoint_url, self.s3_region)

    def file_names(self) -> list[str]:
        """The AOI files directly in the folder (sub-folders and status files are not AOIs)."""
        return sorted(k for k in self.storage.list_keys("") if "/" not in k and k.endswith(AOI_SUFFIX))

    def read(self, file_name: str) -> bytes:
        return self.storage.get_bytes(file_name)

    def load(self, aoi_id: str) -> Aoi:
        """The AOI as its file is now (raises AoiError or StorageError naming the file)."""
        name = f"{aoi_id}{AOI_SUFFIX}"
        return parse_aoi(name, self.read(name))

    def status_uri(self, file_name: str) -> str:
        return self.storage.uri(_status_name(file_name))

    def read_status(self, file_name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.storage.get_bytes(_status_name(file_name)))
        except (StorageError, ValueError):
            return None

    def write_status(self, file_name: str, status: str, **details: Any) -> dict[str, Any]:
        """Replace the file's status (one atomic write, so readers never see half of it)."""
        payload = {
            "aoi": file_name[: -len(AOI_SUFFIX)] if file_name.endswith(AOI_SUFFIX) else file_name,
            "file": self.storage.uri(file_name),
            "status": status,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **details,
        }
        data = json.dumps(payload, indent=1, sort_keys=True).encode()
        self.storage.put_bytes(data, _status_name(file_name), "application/json")
        return payload


def _status_name(file_name: str) -> str:
    stem = file_name[: -len(AOI_SUFFIX)] if file_name.endswith(AOI_SUFFIX) else file_name
    return f"{stem}{STATUS_SUFFIX}"
