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
from cog_assets.stac import catalog
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
        when = item.datetime or item.common_metadata.start_datetime
        assert when is not None  # items are built with CMR's temporal extent
        return self.storage.put_bytes(dumps(payload), item_key(dataset_id, item.id, when), JSON), payload

    def read_item(self, dataset_id: str, record: GranuleRecord) -> dict[str, Any]:
        """The record's stored item; ObjectNotFound when there is none."""
        return json.loads(self.storage.get_bytes(self.item_key(dataset_id, record)))

    @staticmethod
    def item_key(dataset_id: str, record: GranuleRecord) -> str:
        assert record.begin is not None  # records without a temporal extent are refused
        return item_key(dataset_id, record.item_id, record.begin)

    def item_keys(self, dataset_id: str) -> dict[str, str]:
        """Every stored item's key, by item id (one listing, no reads)."""
        refs = catalog.item_refs(dataset_id, self.storage.list_keys(f"{dataset_id}/items/"))
        return {ref.item_id: f"{dataset_id}/items/{ref.year}/{ref.month}/{ref.item_id}.json" for ref in refs}

    def item_ids(self, dataset_id: str) -> list[str]:
        return sorted(self.item_keys(dataset_id))

    def read_json(self, key: str) -> dict[str, Any]:
        return json.loads(self.storage.get_bytes(key))

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
        """Store the collection, its year/month sub-catalogs linking every stored item, and
        refresh the root catalog (one listing of the items, no reads)."""
        listed = self.storage.list_keys(f"{dataset_id}/items/")
        refs = catalog.item_refs(dataset_id, listed)
        wanted = {f"{dataset_id}/{key}": payload for key, payload in catalog.sub_catalogs(dataset_id, refs).items()}
        for key, payload in wanted.items():
            self.storage.put_bytes(dumps(payload), key, JSON)
        for key in listed:  # months and years with no item left
            if key.endswith("/catalog.json") and key not in wanted:
                self.storage.delete(key)
        payload = collection.to_dict(include_self_link=False, transform_hrefs=False)
        payload["links"] = catalog.collection_links(refs)
        stored = self.storage.put_bytes(dumps(payload), collection_key(dataset_id), JSON)
        collections = self._collections()
        self.storage.put_bytes(dumps(stac.root_catalog(collections)), CATALOG_KEY, JSON)
        return stored, len(refs)

    def _collections(self) -> list[str]:
        """Datasets with a collection.json (one listing of the top level, not of everything)."""
        return sorted(
            name.rstrip("/") for name in self.storage.list_folders("")
            if self.storage.exists(collection_key(name.rstrip("/")))
        )
