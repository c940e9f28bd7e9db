"""Day manifests (``<dataset>/days/<YYYY-MM-DD>.json``) of datasets partitioned by day.

A manifest lists exactly the day's live granules (revision, status in the last run, object
URIs) and, apart, the granules whose last attempt failed. It is rewritten by each run of the
day, and a granule leaves it when CMR deletes it or a revision moves it to another day.
"""

from __future__ import annotations

import json
from datetime import timezone
from typing import Any

from cog_assets.processing.chain import GranuleOutcome, Services, live_objects
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.store.archive import Archive, dumps
from cog_assets.store.layout import day_manifest_key
from cog_assets.store.objects import ObjectNotFound, StoredObject

DAY_FORMAT = "%Y-%m-%d"


def day_of(record: GranuleRecord) -> str | None:
    """The partition (UTC day) a granule belongs to: the day its data begins."""
    when = record.begin or record.end
    return when.astimezone(timezone.utc).strftime(DAY_FORMAT) if when else None


def _entry(svc: Services, record: GranuleRecord, status: str) -> dict[str, Any]:
    return {
        "concept_id": record.concept_id,
        "revision_id": record.revision_id,
        "item_id": record.item_id,
        "begin": record.begin.isoformat() if record.begin else None,
        "end": record.end.isoformat() if record.end else None,
        "status": status,
        "objects": live_objects(svc, record),
    }


def write_day_manifest(
    svc: Services, day: str, results: list[tuple[GranuleRecord, GranuleOutcome]]
) -> StoredObject:
    """The day's manifest after a run: its live granules, and the failures of this run."""
    ds = svc.dataset.id
    live: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for record, outcome in results:
        if outcome.error:
            failed.append({"concept_id": record.concept_id, "revision_id": record.revision_id, "error": outcome.error})
            intact = svc.archive.read_record(ds, record.concept_id)  # the previous revision stays live
            if intact is not None and intact.file_name and day_of(intact) == day:
                live.append(_entry(svc, intact, "previous revision (the current one failed)"))
            continue
        live.append(_entry(svc, outcome.record or record, outcome.status))
    manifest = {
        "dataset": ds,
        "day": day,
        "granules_in_cmr": len(results),
        "granules_expected": svc.dataset.partitioning.granules_per_day,
        "granules": live,
        "failed": failed,
    }
    return svc.archive.storage.put_bytes(dumps(manifest), day_manifest_key(ds, day), "application/json")


def remove_from_manifest(archive: Archive, dataset_id: str, day: str, concept_id: str) -> bool:
    """Drop a granule from a day's manifest (CMR deleted it, or it moved to another day)."""
    key = day_manifest_key(dataset_id, day)
    try:
        manifest = json.loads(archive.storage.get_bytes(key))
    except ObjectNotFound:
        return False
    kept = [g for g in manifest["granules"] if g["concept_id"] != concept_id]
    if len(kept) == len(manifest["granules"]):
        return False
    archive.storage.put_bytes(dumps({**manifest, "granules": kept}), key, "application/json")
    return True
