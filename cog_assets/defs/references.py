"""What downstream assets receive for the chain's assets: COG references and STAC items.

The chain writes its objects itself and records where in each materialization's metadata
(``uri``, ``item_id``, ``datetime``, ``cmr_concept_id`` or ``source_id``, ``sha256``). So references to a whole
history come from the event log (two queries per 500 partitions), not from storage: 7,000
COG references cost no GET. A day of a dataset partitioned by day is one manifest GET that
lists the day's granules. Only a STAC item is read from storage, because only it holds more
than the metadata says. Keys are never derived from partition keys or item ids: COG keys
change with each revision.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pystac
from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance

from cog_assets.analysis.cogs import CogRef
from cog_assets.store.objects import Storage, StorageError

_BATCH = 500


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _path_or_uri(uri: str) -> str:
    """file:// URIs as plain paths (what rasterio and users expect); s3:// unchanged."""
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path) if uri.startswith("file://") else uri


def latest_metadata(
    instance: DagsterInstance, asset_key: AssetKey, partitions: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The metadata of each partition's latest materialization, from the event log only."""
    wanted = set(partitions)
    latest = instance.get_latest_storage_id_by_partition(asset_key, DagsterEventType.ASSET_MATERIALIZATION)
    ids = sorted(storage_id for partition, storage_id in latest.items() if partition in wanted)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), _BATCH):
        batch = ids[start : start + _BATCH]
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, storage_ids=batch), limit=len(batch)
        ).records
        for record in records:
            materialization = record.asset_materialization
            if materialization is not None and record.partition_key is not None:
                found[record.partition_key] = {k: v.value for k, v in materialization.metadata.items()}
    return found


def read_uri(storage: Storage, uri: str) -> bytes:
    """An object of the configured storage, by the URI a materialization recorded."""
    base = storage.uri("x")[:-1]
    if not uri.startswith(base):
        raise StorageError(f"{uri} is outside the configured storage {base}; check COG_ASSETS_STORAGE")
    return storage.get_bytes(uri[len(base) :])


def _require_uri(asset_key: AssetKey, partition: str, metadata: Mapping[str, Any]) -> str:
    uri = metadata.get("uri")
    if not uri:
        raise ValueError(
            f"{asset_key.to_user_string()} partition {partition}: its materialization has no 'uri' "
            "metadata, so its object cannot be found; re-materialize the partition"
        )
    return str(uri)


def cog_from_metadata(asset_key: AssetKey, partition: str, metadata: Mapping[str, Any]) -> CogRef:
    return CogRef(
        uri=_path_or_uri(_require_uri(asset_key, partition, metadata)),
        item_id=str(metadata.get("item_id") or ""),
        datetime=_time(metadata.get("datetime")),
        end_datetime=_time(metadata.get("end_datetime")),
        concept_id=metadata.get("cmr_concept_id") or metadata.get("source_id") or None,  # CMR or a bucket
        sha256=metadata.get("sha256") or None,
        partition_key=partition,
    )


def cogs_from_manifest(manifest: Mapping[str, Any], day: str) -> list[CogRef]:
    """The COGs a day's manifest lists (granules that failed at its last run are left out)."""
    refs = []
    for entry in manifest.get("granules", []):
        cog = (entry.get("objects") or {}).get("cog")
        if not cog or entry.get("status") == "failed":
            continue
        refs.append(
            CogRef(
                uri=_path_or_uri(cog),
                item_id=entry.get("item_id") or "",
                datetime=_time(entry.get("begin")),
                end_datetime=_time(entry.get("end")),
                concept_id=entry.get("concept_id"),
                sha256=None,
                partition_key=day,
            )
        )
    return refs


def load_cogs(
    instance: DagsterInstance, storage: Storage, asset_key: AssetKey, partitions: Iterable[str], by_day: bool
) -> dict[str, CogRef | list[CogRef]]:
    """COG references of the materialized partitions among ``partitions`` (a day: a list)."""
    found = latest_metadata(instance, asset_key, partitions)
    if not by_day:
        return {p: cog_from_metadata(asset_key, p, m) for p, m in found.items()}
    return {
        day: cogs_from_manifest(json.loads(read_uri(storage, _require_uri(asset_key, day, m))), day)
        for day, m in found.items()
    }


def load_items(
    instance: DagsterInstance, storage: Storage, asset_key: AssetKey, partitions: Iterable[str], by_day: bool
) -> dict[str, pystac.Item | list[pystac.Item]]:
    """STAC items of the materialized partitions, read from their stored JSON."""
    found = latest_metadata(instance, asset_key, partitions)
    loaded: dict[str, pystac.Item | list[pystac.Item]] = {}
    for partition, metadata in found.items():
        uri = _require_uri(asset_key, partition, metadata)
        if not by_day:
            loaded[partition] = pystac.Item.from_dict(json.loads(read_uri(storage, uri)))
            continue
        manifest = json.loads(read_uri(storage, uri))
        loaded[partition] = [
            pystac.Item.from_dict(json.loads(read_uri(storage, entry["objects"]["stac_item"])))
            for entry in manifest.get("granules", [])
            if entry.get("status") != "failed" and (entry.get("objects") or {}).get("stac_item")
        ]
    return loaded
