"""The work for one granule, as plain functions: stage → convert → describe.

The Dagster chain asset runs :func:`process` for each granule of a run's partition range, one
granule at a time, so one bad granule fails alone while its neighbours materialize. The
backfill benchmark calls the same function without Dagster. Each step writes its outputs to
storage (atomically) before the next step starts; a step that is not selected loads what it
needs from storage, so ``cog`` or ``stac_item`` can be re-run alone.
"""

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cog_assets.dataset import DatasetConfig
from cog_assets.formats import cog as cogs
from cog_assets.formats.readers import read_granule
from cog_assets.sources.cmr.client import CmrClient, CmrError, missing_granule
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.sources.earthdata import EarthdataDownloader
from cog_assets.stac import items as stac
from cog_assets.stac import publishing
from cog_assets.stac.api import DuplicateItemError, StacApi, StacApiError
from cog_assets.store.archive import Archive
from cog_assets.store.layout import (
    COG_MEDIA_TYPE,
    cog_key,
    day_manifest_key,
    granule_key,
    item_key,
    record_key,
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


@dataclass
class StepDone:
    step: str
    metadata: dict[str, Any]


@dataclass
class GranuleOutcome:
    """What happened to one granule: the steps that completed, warnings, and the error if any."""

    concept_id: str
    done: list[StepDone] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    cog_errors: list[str] | None = None  # the validator's errors when a COG was written
    current: str | None = None  # already done at this revision: what publishing it did

    @property
    def status(self) -> str:
        return "failed" if self.error else "current" if self.current else "processed"


def stored_metadata(stored: StoredObject) -> dict[str, Any]:
    return {"uri": stored.uri, "size_bytes": stored.size, "sha256": stored.sha256}


def _stored_record(svc: Services, concept_id: str) -> GranuleRecord:
    record = svc.archive.read_record(svc.dataset.id, concept_id)
    if record is None:
        raise StorageError(
            f"granule {concept_id} has not been staged; materialize {svc.dataset.id}/granule for "
            "this partition first"
        )
    return record


def stage(svc: Services, record: GranuleRecord, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Download and verify the granule, store it, then its CMR record (the record last: its
    presence means the file it names is complete)."""
    ds, storage = svc.dataset.id, svc.archive.storage
    file_name = record.require_file_name()
    path = svc.earthdata.download(record, workdir)
    stored = storage.put_file(path, granule_key(ds, file_name), "application/x-hdf5")
    storage.put_bytes(record.model_dump_json(indent=1).encode(), record_key(ds, record.concept_id), "application/json")
    return path, {
        **stored_metadata(stored),
        "file_name": file_name,
        "cmr_concept_id": record.concept_id,
        "cmr_revision_id": record.revision_id,
        "cmr_checksum": f"{record.checksum_algorithm}:{record.checksum}" if record.checksum else "not provided by CMR",
    }


def convert(
    svc: Services, record: GranuleRecord, granule_path: Path, workdir: Path, outcome: GranuleOutcome
) -> tuple[Path, str, dict[str, Any]]:
    """The configured variable as a validated COG, stored; an invalid COG is never stored."""
    raster = read_granule(granule_path, svc.dataset.reader)
    destination = workdir / f"{record.item_id}.tif"
    cogs.write_cog(raster, destination)
    valid, errors, warnings = cogs.validate(destination)
    outcome.cog_errors = errors
    if not valid:
        raise ValueError(
            f"the COG written from {record.file_name} is not valid ({'; '.join(errors)}); nothing was stored"
        )
    stats = cogs.statistics(raster)
    if stats["valid_pixels"] == 0:
        outcome.warnings.append(
            f"granule {record.concept_id}: every pixel of {svc.dataset.reader.variable} is fill; "
            "the COG is all nodata (valid_fraction 0)"
        )
    key = cog_key(svc.dataset.id, record.item_id)
    stored = svc.archive.storage.put_file(destination, key, COG_MEDIA_TYPE)
    return destination, stored.uri, {
        **stored_metadata(stored), **stats, "item_id": record.item_id, "cog_warnings": warnings,
        # what the IO manager hands downstream assets (with uri and sha256) without reading storage
        "cmr_concept_id": record.concept_id,
        "datetime": record.begin.isoformat() if record.begin else "",
        "end_datetime": record.end.isoformat() if record.end else "",
    }


def describe(svc: Services, record: GranuleRecord, cog_path: Path, cog_uri: str) -> dict[str, Any]:
    """The STAC item: stored first, then published under the dataset's duplicate policy."""
    dataset, api = svc.dataset, svc.stac_api
    item = stac.build_item(dataset, record, cog_path, cog_uri, svc.cmr.base_url)
    unreachable: StacApiError | None = None
    try:  # before writing: a duplicate policy of 'error' leaves storage untouched
        decision = publishing.plan_item(api, dataset, item.id, record.revision_id)
    except DuplicateItemError:
        raise
    except StacApiError as exc:
        decision, unreachable = None, exc
    stored, payload = svc.archive.put_item(dataset.id, item)
    if unreachable is not None:  # stored, so the republish job or a retry delivers it
        raise unreachable
    published = publishing.publish_item(api, dataset, payload, decision) if decision else "not configured"
    return {
        **stored_metadata(stored),
        "item_id": item.id,
        "datetime": payload["properties"].get("datetime") or "",
        "cmr_revision_id": record.revision_id,
        "stac_api": published,
        "stac_api_reason": decision.reason if decision else "COG_ASSETS_STAC_API_URL is not set",
    }


def publish_if_current(svc: Services, record: GranuleRecord) -> str | None:
    """If the stored item already describes this CMR revision, make sure it is published and
    say how; None when the granule still has to be processed.

    Lets a retried day skip the granules an earlier run finished, including ones stored while
    the STAC API was down (they are published now).
    """
    if record.file_name is None:
        return None
    try:
        stored = svc.archive.read_item(svc.dataset.id, record.item_id)
    except StorageError:
        return None
    properties = stored.get("properties", {})
    if (properties.get("cmr:concept_id"), properties.get("cmr:revision_id")) != (record.concept_id, record.revision_id):
        return None
    decision = publishing.plan_item(svc.stac_api, svc.dataset, record.item_id, record.revision_id)
    return publishing.publish_item(svc.stac_api, svc.dataset, stored, decision) if decision else "not configured"


def process(
    svc: Services,
    concept_id: str,
    found: GranuleRecord | str | None,
    steps: set[str],
    scratch: Path,
    skip_current: bool = False,
) -> GranuleOutcome:
    """Run the selected steps for one granule; any failure is caught and described.

    ``found`` is what ``CmrClient.granules`` returned for it (needed when staging). With
    ``skip_current``, a granule whose stored item already has this revision is not redone.
    """
    outcome = GranuleOutcome(concept_id)
    storage, ds = svc.archive.storage, svc.dataset.id
    workdir = Path(tempfile.mkdtemp(dir=scratch))
    record = found if isinstance(found, GranuleRecord) else None
    try:
        if skip_current and record is not None:
            outcome.current = publish_if_current(svc, record)
            if outcome.current is not None:
                return outcome
        if "granule" in steps:
            if record is None:
                raise CmrError(found or missing_granule(svc.dataset.cmr, concept_id))
            granule_path, metadata = stage(svc, record, workdir)
            outcome.done.append(StepDone("granule", metadata))
        else:
            record = _stored_record(svc, concept_id)
            granule_path = None
        if "cog" in steps:
            if granule_path is None:
                granule_path = storage.local_copy(granule_key(ds, record.require_file_name()), workdir)
            cog_path, cog_uri, metadata = convert(svc, record, granule_path, workdir, outcome)
            outcome.done.append(StepDone("cog", metadata))
        elif "stac_item" in steps:
            key = cog_key(ds, record.item_id)
            cog_path, cog_uri = storage.local_copy(key, workdir), storage.uri(key)
        if "stac_item" in steps:
            outcome.done.append(StepDone("stac_item", describe(svc, record, cog_path, cog_uri)))
    except Exception as exc:  # noqa: BLE001 (one granule's failure must not stop the range)
        name = f" ({record.file_name})" if record is not None and record.file_name else ""
        outcome.error = f"granule {concept_id}{name}: {type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome


def write_day_manifest(
    svc: Services, day: str, results: list[tuple[GranuleRecord, GranuleOutcome]]
) -> StoredObject:
    """The day's manifest (``<dataset>/days/<day>.json``): each granule CMR lists for the day,
    its revision, what this run did with it and where its objects are."""
    storage, ds = svc.archive.storage, svc.dataset.id
    entries = []
    for record, outcome in results:
        entry: dict[str, Any] = {
            "concept_id": record.concept_id,
            "item_id": record.item_id if record.file_name else None,
            "end": record.end.isoformat() if record.end else None,
            "revision_id": record.revision_id,
            "begin": record.begin.isoformat() if record.begin else None,
            "status": outcome.status,
        }
        if outcome.error:
            entry["error"] = outcome.error
        if record.file_name:
            entry["objects"] = {
                "granule": storage.uri(granule_key(ds, record.file_name)),
                "cog": storage.uri(cog_key(ds, record.item_id)),
                "stac_item": storage.uri(item_key(ds, record.item_id)),
            }
        entries.append(entry)
    manifest = {
        "dataset": ds,
        "day": day,
        "granules_in_cmr": len(results),
        "granules_expected": svc.dataset.partitioning.granules_per_day,
        "granules": entries,
    }
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    return storage.put_bytes(data, day_manifest_key(ds, day), "application/json")
