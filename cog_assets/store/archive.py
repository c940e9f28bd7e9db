"""The archive: everything the platform keeps under COG_ASSETS_STORAGE, as one resource.

It holds the granule files, the COGs, the CMR records they were made from and the static STAC
catalog (items, collections, the root catalog): the source of truth the STAC API is published
from. Items and collections are written here first (atomically, see ``store.objects``) and
published to the API second, so an API outage never loses an item and the API can always be
rebuilt from storage. Where each thing lives is ``store.layout``.
"""

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
    cog_key,
    collection_key,
    deletion_key,
    granule_key,
    item_key,
    record_key,
)
from cog_assets.store.objects import Storage, StorageError, StoredObject, open_storage


def _dumps(payload: dict[str, Any]) -> bytes:
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
        return self.storage.put_bytes(_dumps(payload), item_key(dataset_id, item.id), "application/json"), payload

    def read_item(self, dataset_id: str, item_id: str) -> dict[str, Any]:
        return json.loads(self.storage.get_bytes(item_key(dataset_id, item_id)))

    def item_ids(self, dataset_id: str) -> list[str]:
        prefix = f"{dataset_id}/items/"
        return [
            key[len(prefix) : -len(".json")]
            for key in self.storage.list_keys(f"{dataset_id}/items")
            if key.startswith(prefix) and key.endswith(".json")
        ]

    # -- collection ------------------------------------------------------------------------
    def put_collection(self, dataset_id: str, collection: pystac.Collection) -> tuple[StoredObject, int]:
        """Store the collection with links to every stored item, and refresh the root catalog."""
        items = self.item_ids(dataset_id)
        stored = self.storage.put_bytes(
            _dumps(stac.collection_with_links(collection, items)), collection_key(dataset_id), "application/json"
        )
        collections = sorted(
            key.split("/", 1)[0]
            for key in self.storage.list_keys("")
            if key.count("/") == 1 and key.endswith("/collection.json")
        )
        self.storage.put_bytes(_dumps(stac.root_catalog(collections)), CATALOG_KEY, "application/json")
        return stored, len(items)

    # -- granules CMR deleted --------------------------------------------------------------
    def read_record(self, dataset_id: str, concept_id: str) -> GranuleRecord | None:
        """The CMR record a granule was staged from, or None if it never was."""
        try:
            return GranuleRecord.model_validate_json(self.storage.get_bytes(record_key(dataset_id, concept_id)))
        except StorageError:
            return None

    def has_record(self, dataset_id: str, concept_id: str) -> bool:
        """Whether this granule was ever staged here (is one of the dataset's)."""
        return self.storage.exists(record_key(dataset_id, concept_id))

    def withdraw(self, dataset_id: str, concept_id: str, deletion: dict[str, Any]) -> list[str]:
        """Remove a CMR-deleted granule's item, COG and file; keep a tombstone saying why.

        The tombstone is written first and the CMR record deleted last, so an interrupted
        withdrawal can simply be repeated. Returns the keys removed.
        """
        record = self.read_record(dataset_id, concept_id)
        keys = []
        if record is not None:
            keys = [item_key(dataset_id, record.item_id), cog_key(dataset_id, record.item_id)]
            if record.file_name:
                keys.append(granule_key(dataset_id, record.file_name))
        keys.append(record_key(dataset_id, concept_id))
        tombstone = {"cmr_deletion": deletion, "removed": keys, "item_id": record.item_id if record else None}
        self.storage.put_bytes(_dumps(tombstone), deletion_key(dataset_id, concept_id), "application/json")
        for key in keys:
            self.storage.delete(key)
        return keys
