"""One concept-id, one live item: where a revision is staged, how it becomes live, and what is
removed once it is.

A granule's objects live under ``<dataset>/granules/<concept-id>/r<rev>/`` and
``<dataset>/cogs/<concept-id>/r<rev>/`` (a COG's name also carries its checksum), so staging a
new revision, or reprocessing the live one, never overwrites what the live item points at.
:func:`commit` is the switch: the item JSON, then the concept's live record
(``<dataset>/cmr/<concept-id>.json``), then the STAC API. Only after the API has switched is
everything the live item no longer references removed (:func:`clean_up`), including an item an
earlier revision had under another name (CMR revisions may rename the file). Every step can be
repeated: the clean-up is derived from what storage holds, not from memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cog_assets.dataset import DatasetConfig
from cog_assets.sources.cmr.records import GranuleRecord, parse_cmr_time
from cog_assets.stac import publishing
from cog_assets.stac.api import Decision, StacApi
from cog_assets.store.archive import Archive, dumps
from cog_assets.store.layout import (
    RECORD_FILE,
    cogs_prefix,
    deletion_key,
    granule_key,
    granules_prefix,
    record_key,
    revision_of,
    staged_record_key,
)
from cog_assets.store.objects import ListedObject, ObjectNotFound, StorageError


class StaleRevisionError(RuntimeError):
    """Storage already holds a newer revision of the granule than the one at hand."""


@dataclass
class Committed:
    """What a commit did: where the live item is, what it replaced, how the API took it."""

    item: dict[str, Any]
    item_uri: str
    item_size: int
    item_sha256: str
    previous: GranuleRecord | None
    published: str
    removed: list[str] = field(default_factory=list)


def check_not_withdrawn(archive: Archive, dataset_id: str, record: GranuleRecord) -> None:
    """A run that read CMR before the granule was deleted must not bring it back after its
    withdrawal (a granule CMR re-ingests later has a newer revision date, and is welcome)."""
    try:
        tombstone = read_tombstone(archive, dataset_id, record.concept_id)
    except ObjectNotFound:
        return
    deleted = tombstone.get("cmr_deletion", {}).get("revision_date")
    if deleted and parse_cmr_time(deleted) >= record.revised:
        raise StaleRevisionError(
            f"granule {record.concept_id} was deleted from CMR at {deleted}, after revision "
            f"{record.revision_id} this run has; it was withdrawn and is not published again"
        )


def check_not_stale(live: GranuleRecord | None, record: GranuleRecord) -> None:
    if live is not None and live.revision_id > record.revision_id:
        raise StaleRevisionError(
            f"storage already holds CMR revision {live.revision_id} of {record.concept_id}, newer "
            f"than revision {record.revision_id} this run has; nothing was written. Re-run the "
            "partition to process the current revision"
        )


def staged_revisions(archive: Archive, dataset_id: str, concept_id: str) -> dict[int, list[ListedObject]]:
    """The revision folders under the granule's prefix, with what each holds."""
    found: dict[int, list[ListedObject]] = {}
    prefix = granules_prefix(dataset_id, concept_id)
    for listed in archive.storage.list_objects(prefix):
        revision = revision_of(listed.key[len(prefix) :].split("/", 1)[0])
        if revision is not None:
            found.setdefault(revision, []).append(listed)
    return found


def newest_staged(archive: Archive, dataset_id: str, concept_id: str) -> GranuleRecord | None:
    """The newest revision whose file is completely staged (its record.json is written last)."""
    for revision, objects in sorted(staged_revisions(archive, dataset_id, concept_id).items(), reverse=True):
        if any(o.key.endswith("/" + RECORD_FILE) for o in objects):
            return archive.read_staged_record(dataset_id, concept_id, revision)
    return None


def referenced_keys(archive: Archive, dataset_id: str, record: GranuleRecord, item: dict[str, Any] | None) -> set[str]:
    """The objects the live revision needs: its granule file and record, and the item's assets."""
    keys = {staged_record_key(dataset_id, record.concept_id, record.revision_id)}
    if record.file_name:
        keys.add(granule_key(dataset_id, record.concept_id, record.revision_id, record.file_name))
    if item is not None:
        keys |= {
            key for asset in item.get("assets", {}).values()
            if (key := archive.storage.key_of(asset.get("href", ""))) is not None
        }
    return keys


def pending_cog(archive: Archive, dataset_id: str, record: GranuleRecord, live_item: dict[str, Any] | None) -> str | None:
    """The COG ``stac_item`` should describe: the newest one of this revision that the live item
    does not reference yet (a ``cog`` re-run), else the one it references."""
    prefix = cogs_prefix(dataset_id, record.concept_id) + f"r{record.revision_id}/"
    cogs = [o for o in archive.storage.list_objects(prefix) if o.key.endswith(".tif")]
    used = {archive.storage.key_of(a.get("href", "")) for a in (live_item or {}).get("assets", {}).values()}
    fresh = [o for o in cogs if o.key not in used]
    chosen = max(fresh or cogs, key=lambda o: o.modified, default=None)
    return chosen.key if chosen else None


def commit(
    archive: Archive,
    api: StacApi,
    dataset: DatasetConfig,
    record: GranuleRecord,
    item: Any,
    decision: Decision | None,
    publish: bool = True,
) -> Committed:
    """Make ``record``'s item the granule's live item, in storage, then in the STAC API.

    Storage switches first (the item JSON, then the live record; an item of the previous
    revision under another name is removed from storage at once, so storage never holds two
    items for one concept-id). If the API then fails (or ``publish`` is False because it could
    not be reached), the objects the API's item still points at are kept; a re-run, or the
    republish job, publishes, and the next commit cleans up.
    """
    ds = dataset.id
    previous = archive.read_record(ds, record.concept_id)
    check_not_stale(previous, record)
    check_not_withdrawn(archive, ds, record)
    stored, payload = archive.put_item(ds, item)
    archive.put_record(ds, record)
    if previous is not None and previous.file_name and archive.item_key(ds, previous) != archive.item_key(ds, record):
        archive.storage.delete(archive.item_key(ds, previous))
    if not publish:
        return Committed(payload, stored.uri, stored.size, stored.sha256, previous, "not published: the STAC API is unreachable")
    decision = decision.keeping(payload) if decision else None
    published = publishing.publish_item(api, dataset, payload, decision) if decision else "not configured"
    removed = clean_up(archive, api, dataset, record, payload)
    return Committed(payload, stored.uri, stored.size, stored.sha256, previous, published, removed)


def clean_up(
    archive: Archive, api: StacApi, dataset: DatasetConfig, live: GranuleRecord, item: dict[str, Any]
) -> list[str]:
    """Remove what the live item no longer references under the granule's prefixes.

    An older revision's item of another name is withdrawn from the API and storage first (its
    name is read from that revision's record.json, which is deleted last), then its objects.
    Newer revisions are left alone: another run may be staging one right now.
    """
    ds = dataset.id
    keep = referenced_keys(archive, ds, live, item)
    removed: list[str] = []
    for revision, objects in sorted(staged_revisions(archive, ds, live.concept_id).items()):
        if revision >= live.revision_id:
            continue
        old = archive.read_staged_record(ds, live.concept_id, revision)
        if old is not None and old.file_name and archive.item_key(ds, old) != archive.item_key(ds, live):
            if api.enabled and old.item_id != live.item_id:
                api.delete_item(ds, old.item_id)
            archive.storage.delete(archive.item_key(ds, old))
        ordered = sorted(objects, key=lambda o: o.key.endswith("/" + RECORD_FILE))  # record last
        removed += _delete(archive, [o.key for o in ordered if o.key not in keep])
    prefix = cogs_prefix(ds, live.concept_id)
    cogs = archive.storage.list_objects(prefix)
    older = [o.key for o in cogs if (revision_of(o.key[len(prefix):].split("/", 1)[0]) or 0) <= live.revision_id]
    removed += _delete(archive, [key for key in older if key not in keep])
    return removed


def roll_back(
    archive: Archive, dataset_id: str, concept_id: str, written: list[str], log: Callable[[str], None]
) -> None:
    """After a failed attempt, remove what it wrote that the live revision does not use."""
    if not written:
        return
    try:
        live = archive.read_record(dataset_id, concept_id)
        item = archive.read_item(dataset_id, live) if live is not None and live.file_name else None
        keep = referenced_keys(archive, dataset_id, live, item) if live is not None else set()
        _delete(archive, [key for key in reversed(written) if key not in keep])
    except StorageError as exc:  # the next successful commit of the granule removes them
        log(f"could not remove the failed attempt's objects of {concept_id} yet: {exc}")


def withdraw(archive: Archive, api: StacApi, dataset: DatasetConfig, concept_id: str, deletion: dict[str, Any]) -> list[str]:
    """Take a granule CMR deleted out of the API, then out of storage; keep a tombstone.

    The tombstone is written first and the live record deleted last, so an interrupted
    withdrawal can simply be repeated. Returns the keys removed.
    """
    ds = dataset.id
    live = archive.read_record(ds, concept_id)
    staged = staged_revisions(archive, ds, concept_id)
    records = [live] if live is not None and live.file_name else []
    for revision in staged:
        old = archive.read_staged_record(ds, concept_id, revision)
        if old is not None and old.file_name:
            records.append(old)
    items = {archive.item_key(ds, r): r.item_id for r in records}
    tombstone = {"cmr_deletion": deletion, "item_ids": sorted(set(items.values())), "revision_id": live.revision_id if live else None}
    archive.storage.put_bytes(dumps(tombstone), deletion_key(ds, concept_id), "application/json")
    for item_id in sorted(set(items.values())):
        if api.enabled:
            api.delete_item(ds, item_id)
    removed = sorted(items)
    _delete(archive, removed)
    objects = [o for revision in staged.values() for o in revision]
    objects += archive.storage.list_objects(cogs_prefix(ds, concept_id))
    removed += _delete(archive, [o.key for o in sorted(objects, key=lambda o: o.key.endswith("/" + RECORD_FILE))])
    removed += _delete(archive, [record_key(ds, concept_id)])
    return removed


def _delete(archive: Archive, keys: list[str]) -> list[str]:
    for key in keys:
        archive.storage.delete(key)
    return keys


def read_tombstone(archive: Archive, dataset_id: str, concept_id: str) -> dict[str, Any]:
    return json.loads(archive.storage.get_bytes(deletion_key(dataset_id, concept_id)))
