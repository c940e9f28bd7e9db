"""The promise, checked: the live granules at the source (CMR, or a bucket prefix) = the
granules with a stored item = the items in the STAC API; one item per granule; each item's
checksum equals its COG's bytes; no object of a superseded or deleted revision left.

Granules the source lists that were never processed (history registered for backfills) are
counted, not violations; so are objects of a newer revision still being staged (``pending``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cog_assets.dataset import DatasetConfig
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.sources.source import CmrGranules, GranuleSource
from cog_assets.stac import identity
from cog_assets.stac.api import StacApi, asset_refs
from cog_assets.stac.items import COG_ASSET
from cog_assets.store.archive import Archive
from cog_assets.store.layout import revision_of
from cog_assets.store.objects import ListedObject, Storage

SAMPLE = 20
GRACE = timedelta(hours=1)  # time CMR's newest granules get to be picked up and processed


@dataclass
class InvariantReport:
    live_in_cmr: int = 0
    stored_items: int = 0
    api_items: int | None = None
    awaiting_processing: int = 0  # live in CMR, never processed (history for backfills)
    pending_objects: int = 0  # objects of a revision still being staged
    cogs_hashed: int = 0
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def holds(self) -> bool:
        return not any(self.violations.values())

    def add(self, kind: str, detail: str) -> None:
        self.violations[kind].append(detail)

    def summary(self) -> str:
        if self.holds:
            return (
                f"in step: {self.live_in_cmr} live granules at the source, {self.stored_items} stored items"
                + (f", {self.api_items} in the STAC API" if self.api_items is not None else "")
                + f" ({self.awaiting_processing} not processed yet)"
            )
        return "; ".join(f"{len(v)} {k}" for k, v in sorted(self.violations.items()) if v)

    def metadata(self) -> dict[str, Any]:
        counts = {f"violations: {k}": len(v) for k, v in sorted(self.violations.items()) if v}
        return {
            "live_in_cmr": self.live_in_cmr,
            "stored_items": self.stored_items,
            "api_items": self.api_items if self.api_items is not None else "not configured",
            "awaiting_processing": self.awaiting_processing,
            "pending_objects": self.pending_objects,
            "cogs_hashed": self.cogs_hashed,
            "violations": sum(len(v) for v in self.violations.values()),
            **counts,
            "samples": {k: v[:20] for k, v in self.violations.items() if v},
        }


def _granule_objects(listed: Iterable[ListedObject], dataset_id: str) -> dict[str, dict[int, list[str]]]:
    """concept-id → revision → keys, for everything under granules/ and cogs/."""
    found: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for obj in listed:
        parts = obj.key.split("/")
        if len(parts) >= 5 and parts[1] in ("granules", "cogs"):
            revision = revision_of(parts[3])
            found[parts[2]][revision if revision is not None else -1].append(obj.key)
    return found


def check(source: GranuleSource | CmrClient, archive: Archive, api: StacApi, dataset: DatasetConfig,
          hash_all: bool = False, published_since: datetime | None = None, grace: timedelta = GRACE) -> InvariantReport:
    """Compare the source (a CmrClient stands for the dataset's CMR query), storage and the STAC
    API (reads every stored item; hashes a sample of COGs, or all of them with ``hash_all``).
    With ``published_since`` (when the sensor was switched on), a granule the source published
    after it and more than ``grace`` ago that has no item is a violation, not history awaiting
    a backfill."""
    ds, storage, report = dataset.id, archive.storage, InvariantReport()
    if isinstance(source, CmrClient):
        source = CmrGranules(source, dataset.query)
    live = {r.concept_id: r for r in source.live()}
    report.live_in_cmr = len(live)
    listed = storage.list_objects(f"{ds}/")
    sizes = {o.key: o.size for o in listed}
    objects = _granule_objects(listed, ds)
    items = [json.loads(storage.get_bytes(key)) for key in archive.item_keys(ds).values()]
    report.stored_items = len(items)
    by_concept: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        by_concept[identity.granule_id(item["properties"]) or "?"].append(item)
    to_hash: list[tuple[str, str]] = []
    for concept_id, held in by_concept.items():
        if len(held) > 1:
            report.add("concept-ids with more than one item", f"{concept_id}: {sorted(i['id'] for i in held)}")
        for item in held:
            _check_item(report, item, live.get(concept_id), (sizes, storage, objects.get(concept_id, {})), to_hash, ds)
    for concept_id, revisions in objects.items():
        if concept_id not in by_concept:
            keys = [k for keys in revisions.values() for k in keys]
            if concept_id in live:
                report.pending_objects += len(keys)
            else:
                report.add("objects of a deleted granule left", f"{concept_id}: {keys[:3]}")
    overdue = datetime.now(timezone.utc) - grace
    for concept_id, record in live.items():
        if concept_id not in by_concept:
            if storage.exists(f"{ds}/cmr/{concept_id}.json"):
                report.add("live granules whose item is missing", concept_id)
            elif published_since is not None and published_since <= record.revised < overdue:
                report.add("granules published since the sensor was switched on, not processed", concept_id)
            else:
                report.awaiting_processing += 1
    _hash_cogs(report, archive, to_hash if hash_all else random.sample(to_hash, min(SAMPLE, len(to_hash))))
    if api.enabled:
        _check_api(report, api, ds, {i["id"]: i for i in items})
    return report


def _check_item(report: InvariantReport, item: dict[str, Any], record: GranuleRecord | None,
                stored: tuple[dict[str, int], Storage, dict[int, list[str]]], to_hash: list, ds: str) -> None:
    sizes, storage, revisions = stored
    concept_id, revision = identity.granule_id(item["properties"]), identity.revision(item["properties"])
    if record is None:
        report.add("items of granules CMR no longer lists", f"{item['id']} ({concept_id})")
        return
    if not identity.is_current(item["properties"], record) or item["id"] != record.item_id:
        report.add("items behind CMR's revision", f"{item['id']} r{revision}, CMR has {record.item_id} r{record.revision_id}")
    asset = item["assets"].get(COG_ASSET, {})
    key = storage.key_of(asset.get("href", "")) or ""
    checksum = asset.get("file:checksum", "")
    if key not in sizes:
        report.add("items whose COG is missing", f"{item['id']}: {asset.get('href')}")
    elif sizes[key] != asset.get("file:size") or not key.endswith(f".{checksum[4:16]}.tif"):
        report.add("items whose checksum does not match their COG", f"{item['id']}: {key}")
    else:
        to_hash.append((key, checksum))
    assets = {storage.key_of(a.get("href", "")) for a in item["assets"].values()}
    own = f"{ds}/granules/{concept_id}/r{revision}/"  # the item's own revision's file and record
    wanted = assets | {k for keys in revisions.values() for k in keys if k.startswith(own)}
    for rev, keys in revisions.items():
        stray = [k for k in keys if k not in wanted]
        if rev > (revision or 0):
            report.pending_objects += len(stray)
        elif stray:
            report.add("objects of superseded revisions left", f"{concept_id}: {stray[:3]}")


def _hash_cogs(report: InvariantReport, archive: Archive, cogs: list[tuple[str, str]]) -> None:
    for key, checksum in cogs:
        report.cogs_hashed += 1
        if "1220" + hashlib.sha256(archive.storage.get_bytes(key)).hexdigest() != checksum:
            report.add("items whose checksum does not match their COG", f"{key} (bytes differ)")


def _check_api(report: InvariantReport, api: StacApi, ds: str, stored: dict[str, dict[str, Any]]) -> None:
    if api.get_collection(ds) is None:
        report.api_items = 0
        if stored:
            report.add("stored items missing in the STAC API", f"the collection {ds} is not in the API")
        return
    published: dict[str, dict[str, Any]] = {}
    per_concept: dict[str, list[str]] = defaultdict(list)
    for item in api.iter_items(ds):
        published[item["id"]] = item
        per_concept[identity.granule_id(item["properties"]) or "?"].append(item["id"])
    report.api_items = len(published)
    for item_id in sorted(stored.keys() - published.keys()):
        report.add("stored items missing in the STAC API", item_id)
    for item_id in sorted(published.keys() - stored.keys()):
        report.add("STAC API items not in storage", item_id)
    for item_id in sorted(stored.keys() & published.keys()):
        if asset_refs(stored[item_id]) != asset_refs(published[item_id]):  # hrefs and checksums
            report.add("STAC API items differing from storage", item_id)
    for concept_id, ids in per_concept.items():
        if len(ids) > 1:
            report.add("concept-ids with more than one item in the STAC API", f"{concept_id}: {sorted(ids)}")
