"""Which source granule an item stands for, in words each source owns.

A CMR granule's item says ``cmr:concept_id`` / ``cmr:revision_id`` (and its collection the CMR
query); an object from a bucket says ``cog_assets:source_id`` (the object's stem) and
``cog_assets:source_revision`` (its LastModified, in seconds), with the object's URL and ETag.
Publishing (the duplicate policy) and the invariant check read an item's granule and revision
through :func:`granule_id` and :func:`revision`, whatever the source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cog_assets.dataset import DatasetConfig
from cog_assets.sources.cmr.records import GranuleRecord

ID_PROPERTIES = ("cmr:concept_id", "cog_assets:source_id")
REVISION_PROPERTIES = ("cmr:revision_id", "cog_assets:source_revision")
WORLD = (-180.0, -90.0, 180.0, 90.0)


def item_properties(record: GranuleRecord) -> dict[str, Any]:
    """The properties naming the item's granule and revision at its source."""
    if record.source == "cmr":
        return {"cmr:concept_id": record.concept_id, "cmr:revision_id": record.revision_id,
                "cmr:revision_date": record.revision_date, "cmr:granule_ur": record.granule_ur}
    return {"cog_assets:source_id": record.concept_id, "cog_assets:source_revision": record.revision_id,
            "cog_assets:source_modified": record.revision_date, "cog_assets:source_url": record.data_url,
            "cog_assets:source_etag": record.etag}


def granule_id(properties: dict[str, Any]) -> str | None:
    return next((properties[name] for name in ID_PROPERTIES if name in properties), None)


def revision(properties: dict[str, Any]) -> int | None:
    return next((properties[name] for name in REVISION_PROPERTIES if name in properties), None)


def is_current(properties: dict[str, Any], record: GranuleRecord) -> bool:
    """Whether an item holds the source's current revision: CMR's revision-id; for an object,
    its ETag (re-uploading the same bytes moves LastModified, not the content)."""
    if record.source == "cmr":
        return revision(properties) == record.revision_id
    return properties.get("cog_assets:source_etag") == record.etag


def cmr_record_url(cmr_url: str, record: GranuleRecord) -> str:
    """The granule's CMR record at this revision."""
    return f"{cmr_url.rstrip('/')}/search/concepts/{record.concept_id}/{record.revision_id}.umm_json"


def run_metadata(record: GranuleRecord, cmr_url: str) -> dict[str, Any]:
    """What a materialization says of the granule it was made from."""
    if record.source == "cmr":
        return {"cmr_concept_id": record.concept_id, "cmr_revision_id": record.revision_id,
                "cmr_record": cmr_record_url(cmr_url, record)}
    return {"source_id": record.concept_id, "source_revision": record.revision_id,
            "source_object": record.data_url, "source_etag": record.etag}


def checksum_metadata(record: GranuleRecord) -> dict[str, str]:
    """The checksum the staged file was verified against, as its source declared it."""
    declared = f"{record.checksum_algorithm}:{record.checksum}" if record.checksum else None
    if record.source == "cmr":
        return {"cmr_checksum": declared or "not provided by CMR"}
    return {"source_checksum": declared or f"ETag {record.etag} (multipart: no MD5; copied with If-Match on it)"}


def collection_extent(dataset: DatasetConfig) -> tuple[list[float], list[datetime | None]]:
    """The collection's bbox and interval: the CMR query's, else the world and an open interval
    (the STAC API widens it to the items as they arrive)."""
    query = dataset.cmr
    if query is None:
        return list(WORLD), [None, None]
    return list(query.bounding_box or WORLD), [query.temporal_start, query.temporal_end]


def collection_fields(dataset: DatasetConfig) -> dict[str, Any]:
    """Where the collection's granules come from."""
    query = dataset.cmr
    if query is None:
        return {"cog_assets:source_url": getattr(dataset.source, "url", None)}
    return {"cmr:short_name": query.short_name, "cmr:version": query.version, "cmr:provider": query.provider}
