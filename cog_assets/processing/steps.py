"""The three steps of one granule's work, as plain functions: ``stage`` (fetch, verify, store
the file), ``convert`` (a validated COG with its thumbnail and preview, stored under the
revision's prefix) and ``describe`` (the STAC item, committed as the live one), with what they
share (:class:`Services`, an :class:`Attempt`'s working state). ``chain.process`` decides which
run and in which order; nothing here knows Dagster.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cog_assets.dataset import DatasetConfig
from cog_assets.formats import cog as cogs
from cog_assets.formats.cog import CogInfo
from cog_assets.formats.thumbnail import render_png
from cog_assets.processing import revisions
from cog_assets.processing.convert import ConversionJob
from cog_assets.processing.lanes import INLINE, Lanes
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.sources.earthdata import EarthdataDownloader
from cog_assets.sources.source import GranuleSource, source_for
from cog_assets.stac import identity
from cog_assets.stac import items as stac
from cog_assets.stac.api import Decision, StacApi
from cog_assets.store.archive import Archive
from cog_assets.store.layout import (
    COG_MEDIA_TYPE,
    cog_key,
    granule_key,
    granule_media_type,
    staged_record_key,
    thumbnail_key,
)
from cog_assets.store.objects import StorageError, StoredObject

STEPS = ("granule", "cog", "stac_item")


@dataclass(frozen=True)
class Services:
    """The resources one granule's work needs."""

    dataset: DatasetConfig
    cmr: CmrClient
    earthdata: EarthdataDownloader
    archive: Archive
    stac_api: StacApi
    lanes: Lanes = INLINE  # what granules of one run share: download slots, converters (processing.lanes)
    s3: Any = None  # dagster-aws S3Resource: datasets whose source is an S3 prefix

    @cached_property
    def source(self) -> GranuleSource:
        """Where the dataset's granules come from (CMR and Earthdata, or a bucket prefix)."""
        return source_for(self.dataset, self.cmr, self.earthdata, self.s3)


@dataclass
class StepDone:
    step: str
    metadata: dict[str, Any]


@dataclass
class GranuleOutcome:
    """What happened to one granule: the steps that completed, warnings, and the error if any."""

    concept_id: str
    record: GranuleRecord | None = None
    done: list[StepDone] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    cog_errors: list[str] | None = None  # the validator's errors when a COG was written
    current: str | None = None  # already live at this revision: what publishing it did
    previous: GranuleRecord | None = None  # the live revision this one replaced

    @property
    def status(self) -> str:
        return "failed" if self.error else "current" if self.current else "processed"


@dataclass
class Attempt:
    """One granule's working state: its record, local files, and the keys written so far."""

    record: GranuleRecord
    workdir: Path
    written: list[str] = field(default_factory=list)
    granule_path: Path | None = None
    cog: CogInfo | None = None
    cog_uri: str | None = None
    thumbnail_uri: str | None = None


def stored_metadata(stored: StoredObject) -> dict[str, Any]:
    return {"uri": stored.uri, "size_bytes": stored.size, "sha256": stored.sha256}


def _cmr_metadata(svc: Services, record: GranuleRecord) -> dict[str, Any]:
    return identity.run_metadata(record, svc.cmr.base_url)


def stage(svc: Services, attempt: Attempt) -> dict[str, Any]:
    """Download and verify the granule, store it under its revision, then that revision's
    record (written last: its presence means the file it names is complete)."""
    ds, record = svc.dataset.id, attempt.record
    file_name = record.require_file_name()
    with svc.lanes.download:  # the run's download slots (its pool slot)
        # its own folder: a granule that is a GeoTIFF already has the COG's name (<item>.tif)
        attempt.granule_path = svc.source.fetch(record, attempt.workdir / "granule")
    key = granule_key(ds, record.concept_id, record.revision_id, file_name)
    stored = svc.archive.storage.put_file(attempt.granule_path, key, granule_media_type(file_name))
    attempt.written.append(key)
    svc.archive.put_record(ds, record, staged=True)
    attempt.written.append(staged_record_key(ds, record.concept_id, record.revision_id))
    return {
        **stored_metadata(stored),
        "file_name": file_name,
        **_cmr_metadata(svc, record),
        **identity.checksum_metadata(record),
    }


def convert(svc: Services, attempt: Attempt, outcome: GranuleOutcome) -> dict[str, Any]:
    """The configured variable as a validated COG, stored; an invalid COG is never stored."""
    ds, record = svc.dataset.id, attempt.record
    if attempt.granule_path is None:
        key = granule_key(ds, record.concept_id, record.revision_id, record.require_file_name())
        attempt.granule_path = svc.archive.storage.local_copy(key, attempt.workdir)
    render = svc.dataset.stac.render
    job = ConversionJob(attempt.granule_path, svc.dataset.reader, attempt.workdir / f"{record.item_id}.tif",
                        render.colormap, render.rescale)
    converted = svc.lanes.convert(job)
    outcome.cog_errors = converted.errors
    if converted.info is None or converted.thumbnail is None or converted.preview is None:
        raise ValueError(
            f"the COG written from {record.file_name} is not valid ({'; '.join(converted.errors)}); nothing was stored"
        )
    info = attempt.cog = converted.info
    if info.statistics["valid_pixels"] == 0:
        outcome.warnings.append(
            f"granule {record.concept_id}: every pixel of {svc.dataset.reader.title} is fill; "
            "the COG is all nodata (valid_fraction 0)"
        )
    key = cog_key(ds, record.concept_id, record.revision_id, record.item_id, info.sha256)
    stored = svc.archive.storage.put_file(converted.cog, key, COG_MEDIA_TYPE, sha256=info.sha256)
    attempt.written.append(key)
    attempt.cog_uri = stored.uri
    _store_thumbnail(svc, attempt, key, converted.thumbnail.read_bytes())
    preview = converted.preview.read_bytes()
    return {
        "preview": "data:image/webp;base64," + base64.b64encode(preview).decode(),
        **stored_metadata(stored),
        **_statistics(info, svc.dataset.reader.units),
        "item_id": record.item_id,
        "datetime": record.begin.isoformat() if record.begin else "",
        "end_datetime": record.end.isoformat() if record.end else "",
        **_cmr_metadata(svc, record),
        "thumbnail": attempt.thumbnail_uri,
        "cog_written": "the source file as it is (already a valid COG)" if converted.used_as_is else "converted",
        "cog_warnings": converted.warnings,
    }


def _statistics(info: CogInfo, units: str | None) -> dict[str, Any]:
    """Statistics as the UI shows them: rounded once (cog.statistics), with the units."""
    stats = info.statistics
    shown: dict[str, Any] = {"valid_pixels": stats["valid_pixels"], "valid_fraction": stats["valid_fraction"]}
    for name in ("minimum", "maximum", "mean"):
        if name in stats:
            shown[f"{name} ({units or 'unitless'})"] = stats[name]
    return shown


def _store_thumbnail(svc: Services, attempt: Attempt, cog_key_: str, png: bytes) -> None:
    """The PNG preview beside the COG (the item's ``thumbnail`` asset)."""
    key = thumbnail_key(cog_key_)
    stored = svc.archive.storage.put_bytes(png, key, "image/png")
    attempt.written.append(key)
    attempt.thumbnail_uri = stored.uri


def load_cog(svc: Services, attempt: Attempt) -> None:
    """``stac_item`` alone: the COG of this revision a ``cog`` run left, else the live one."""
    ds, record = svc.dataset.id, attempt.record
    live = svc.archive.read_record(ds, record.concept_id)
    item = None
    if live is not None and live.revision_id == record.revision_id:
        item = svc.archive.read_item(ds, live)
    key = revisions.pending_cog(svc.archive, ds, record, item)
    if key is None:
        raise StorageError(
            f"granule {record.concept_id} revision {record.revision_id} has no COG yet; "
            f"materialize {ds}/cog for this partition first"
        )
    storage = svc.archive.storage
    local = storage.local_copy(key, attempt.workdir)
    attempt.cog, attempt.cog_uri = cogs.read_info(local), storage.uri(key)
    if storage.exists(thumbnail_key(key)):
        attempt.thumbnail_uri = storage.uri(thumbnail_key(key))
    else:  # a COG from before thumbnails existed
        render = svc.dataset.stac.render
        _store_thumbnail(svc, attempt, key, render_png(local, render.colormap, render.rescale))


def describe(
    svc: Services, attempt: Attempt, decision: Decision | None, outcome: GranuleOutcome, publish: bool = True
) -> dict[str, Any]:
    """The STAC item, committed as the granule's live item (storage, then the STAC API unless
    it could not be reached)."""
    dataset, record = svc.dataset, attempt.record
    assert attempt.cog is not None and attempt.cog_uri is not None
    item = stac.build_item(dataset, record, attempt.cog, attempt.cog_uri, svc.cmr.base_url, attempt.thumbnail_uri)
    committed = revisions.commit(svc.archive, svc.stac_api, dataset, record, item, decision, publish)
    outcome.previous = committed.previous
    replaced = committed.previous.item_id if committed.previous and committed.previous.file_name else None
    return {
        "uri": committed.item_uri,
        "size_bytes": committed.item_size,
        "sha256": committed.item_sha256,
        "item_id": item.id,
        "datetime": committed.item["properties"].get("datetime") or "",
        **_cmr_metadata(svc, record),
        "replaced_item": replaced if replaced and replaced != item.id else "",
        "stac_api": committed.published,
        "stac_api_reason": decision.reason if decision else "COG_ASSETS_STAC_API_URL is not set",
        "objects_removed": len(committed.removed),
        **({"stac_api_item": svc.stac_api.item_url(dataset.id, item.id)} if svc.stac_api.enabled else {}),
    }
