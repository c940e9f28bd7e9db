"""The archive: everything the platform keeps under COG_ASSETS_STORAGE, as one resource.

It holds the granule files, the COGs, the CMR records they were made from and the static STAC
catalog (items, collections, the root catalog): the source of truth the STAC API is published
from. Items and collections are written here first (atomically, see ``store.objects``) and
published to the API second, so an API outage never loses an item and the API can always be
rebuilt from storage. Where each thing lives is ``store.layout``; how a revision becomes live
is ``processing.revisions``.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

import pystac
from dagster import ConfigurableResource
from pydantic import Field

from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.stac import items as stac
from cog_assets.store.layout import (
    CATALOG_KEY,
    collection_key,
    item_key,
    record_key,
    staged_record_key,
)
from cog_assets.store.objects import ObjectNotFound, Storage, StoredObject, open_storage

JSON = "application/json"


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, indent=1, sort_keys=True).encode()


class Archive(ConfigurableResource):
    """Reads and writes the platform's objects under COG_ASSETS_STORAGE."""

    storage_url: str = Field(description="file:///abs/dir or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(default=None, description="AWS_ENDPOINT_URL")
    s3_region: str | None = Field(default=None, description="AWS_REGION")
    s3_max_attempts: int = Field(default=5, ge=1, description="boto3 attempts per S3 call")

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.storage_url, self.s3_endpoint_url, self.s3_region, self.s3_max_attempts)

    # -- items -----------------------------------------------------------------------------
    def put_item(self, dataset_id: str, item: pystac.Item) -> tuple[StoredObject, dict[str, Any]]:
        """Store the item; returns where, and the JSON as stored."""
        payload = stac.item_for_catalog(item)
        return self.storage.put_bytes(dumps(payload), item_key(dataset_id, item.id), JSON), payload

    def read_item(self, dataset_id: str, item_id: str) -> dict[str, Any]:
        """The stored item; ObjectNotFound when there is none."""
        return json.loads(self.storage.get_bytes(item_key(dataset_id, item_id)))

    def item_ids(self, dataset_id: str) -> list[str]:
        prefix = f"{dataset_id}/items/"
        return [
            key[len(prefix) : -len(".json")]
            for key in self.storage.list_keys(prefix)
            if key.startswith(prefix) and key.endswith(".json")
        ]

    # -- CMR records -------------------------------------------------------------------------
    def read_record(self, dataset_id: str, concept_id: str) -> GranuleRecord | None:
        """The live revision's CMR record, or None if the granule has no live item.

        Only "not found" means None: any other storage failure raises, so an outage is never
        mistaken for an absent granule.
        """
        return self._record(record_key(dataset_id, concept_id))

    def read_staged_record(self, dataset_id: str, concept_id: str, revision: int) -> GranuleRecord | None:
        return self._record(staged_record_key(dataset_id, concept_id, revision))

    def _record(self, key: str) -> GranuleRecord | None:
        try:
            return GranuleRecord.model_validate_json(self.storage.get_bytes(key))
        except ObjectNotFound:
            return None

    def put_record(self, dataset_id: str, record: GranuleRecord, staged: bool = False) -> StoredObject:
        """The staged record of its revision, or (``staged=False``) the live pointer."""
        key = (
            staged_record_key(dataset_id, record.concept_id, record.revision_id)
            if staged
            else record_key(dataset_id, record.concept_id)
        )
        return self.storage.put_bytes(record.model_dump_json(indent=1).encode(), key, JSON)

    def has_record(self, dataset_id: str, concept_id: str) -> bool:
        """Whether the granule has a live item here (raises on storage failures)."""
        return self.storage.exists(record_key(dataset_id, concept_id))

    # -- collection ------------------------------------------------------------------------
    def put_collection(self, dataset_id: str, collection: pystac.Collection) -> tuple[StoredObject, int]:
        """Store the collection with links to every stored item, and refresh the root catalog."""
        items = self.item_ids(dataset_id)
        stored = self.storage.put_bytes(
            dumps(stac.collection_with_links(collection, items)), collection_key(dataset_id), JSON
        )
        collections = sorted(
            key.split("/", 1)[0]
            for key in self.storage.list_keys("")
            if key.count("/") == 1 and key.endswith("/collection.json")
        )
        self.storage.put_bytes(dumps(stac.root_catalog(collections)), CATALOG_KEY, JSON)
        return stored, len(items)
