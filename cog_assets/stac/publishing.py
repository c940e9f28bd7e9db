"""Keeping the STAC API in step with the static catalog: publish, withdraw, reconcile, republish.

Storage is the source of truth. An item is stored before it is published; a CMR deletion is
withdrawn from the API before it is removed from storage; and the API can be checked against,
and rebuilt from, storage at any time.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cog_assets.dataset import DatasetConfig
from cog_assets.stac.api import Decision, StacApi, covering_extent, decide
from cog_assets.stac.items import build_collection, for_api
from cog_assets.store.archive import Archive

EXTENT_BATCH = 500
REPORT_SAMPLE = 50


def collection_payload(dataset: DatasetConfig) -> dict[str, Any]:
    """The dataset's collection as the API receives it."""
    return for_api(build_collection(dataset).to_dict(include_self_link=False, transform_hrefs=False))


def plan_item(api: StacApi, dataset: DatasetConfig, item_id: str, revision: int) -> Decision | None:
    """The duplicate policy's decision for an item (None: no API configured).

    Taken before anything is written, so a policy of ``error`` leaves storage untouched.
    """
    if not api.enabled:
        return None
    return decide(dataset.stac.duplicates, item_id, revision, api.get_item(dataset.id, item_id))


def publish_item(api: StacApi, dataset: DatasetConfig, stored_item: dict[str, Any], decision: Decision) -> str:
    """Publish a stored item: the collection first (created or widened), then the item."""
    item = for_api(stored_item)
    if decision.action != "skip":
        api.ensure_collection(collection_payload(dataset), [item])
    return api.publish_item(item, decision)


def _batches(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass
class Reconciliation:
    """Items present on one side and not the other (a Cumulus-style reconciliation report)."""

    storage_items: int
    api_items: int
    collection_in_api: bool
    extent_covers_items: bool
    missing_in_api: list[str] = field(default_factory=list)
    missing_in_storage: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return (
            self.collection_in_api
            and self.extent_covers_items
            and not self.missing_in_api
            and not self.missing_in_storage
        )

    def summary(self) -> str:
        if self.in_sync:
            return f"storage and the STAC API agree on {self.storage_items} items"
        parts = [
            f"{len(self.missing_in_api)} stored items missing in the STAC API",
            f"{len(self.missing_in_storage)} API items missing in storage",
        ]
        if not self.collection_in_api:
            parts.append("the collection is missing in the STAC API")
        elif not self.extent_covers_items:
            parts.append("the API collection's extent does not cover its items")
        return "; ".join(parts) + ". Run the republish job to make the API match storage"

    def metadata(self) -> dict[str, Any]:
        return {
            "storage_items": self.storage_items,
            "api_items": self.api_items,
            "missing_in_api": len(self.missing_in_api),
            "missing_in_storage": len(self.missing_in_storage),
            "missing_in_api_sample": self.missing_in_api[:REPORT_SAMPLE],
            "missing_in_storage_sample": self.missing_in_storage[:REPORT_SAMPLE],
            "collection_in_api": self.collection_in_api,
            "extent_covers_items": self.extent_covers_items,
        }


def reconcile(archive: Archive, api: StacApi, dataset: DatasetConfig) -> Reconciliation:
    """Compare the item ids in storage and in the API, and the API collection's extent."""
    stored = set(archive.item_ids(dataset.id))
    collection = api.get_collection(dataset.id)
    published: set[str] = set()
    covers = collection is not None
    if collection is not None:
        batch: list[dict[str, Any]] = []
        for item in api.iter_items(dataset.id):
            published.add(item["id"])
            batch.append(item)
            if len(batch) == EXTENT_BATCH:
                covers &= covering_extent(collection, batch) is None
                batch = []
        covers &= covering_extent(collection, batch) is None
    return Reconciliation(
        storage_items=len(stored),
        api_items=len(published),
        collection_in_api=collection is not None,
        extent_covers_items=covers,
        missing_in_api=sorted(stored - published),
        missing_in_storage=sorted(published - stored),
    )


@dataclass
class Republication:
    published: int = 0
    pruned: int = 0
    unchanged: int = 0


def republish(
    archive: Archive,
    api: StacApi,
    dataset: DatasetConfig,
    only_missing: bool = True,
    prune: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Republication:
    """Make the API match storage: upsert stored items (all, or those it lacks) and,
    with ``prune``, delete API items that storage does not hold. Idempotent."""
    report = reconcile(archive, api, dataset)
    result = Republication()
    keys = archive.item_keys(dataset.id)
    targets = report.missing_in_api if only_missing else sorted(keys)
    result.unchanged = report.storage_items - len(targets)
    collection = collection_payload(dataset)
    api.ensure_collection(collection, [])
    for batch in _batches(targets, EXTENT_BATCH):
        items = [for_api(archive.read_json(keys[item_id])) for item_id in batch]
        api.ensure_collection(collection, items)
        for item in items:
            api.upsert_item(item)
        result.published += len(items)
        log(f"{dataset.id}: published {result.published}/{len(targets)} items from storage")
    if prune:
        for item_id in report.missing_in_storage:
            api.delete_item(dataset.id, item_id)
            result.pruned += 1
    if report.collection_in_api and not report.extent_covers_items:
        batch: list[dict[str, Any]] = []
        for item in api.iter_items(dataset.id):
            batch.append(item)
            if len(batch) == EXTENT_BATCH:
                api.ensure_collection(collection, batch)
                batch = []
        api.ensure_collection(collection, batch)
    return result
