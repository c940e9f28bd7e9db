"""Where each thing is stored.

Storage layout under COG_ASSETS_STORAGE (a static STAC catalog that pystac can walk):

    catalog.json                         root catalog linking every collection
    <dataset>/collection.json            STAC collection
    <dataset>/items/<item>.json          STAC item per granule
    <dataset>/cogs/<item>.tif            Cloud-Optimized GeoTIFF
    <dataset>/granules/<file>            the original granule file, as downloaded
    <dataset>/cmr/<concept-id>.json      the CMR record it was staged from (what later steps load)
    <dataset>/deleted/<concept-id>.json  tombstone of a granule CMR deleted (what was withdrawn)
    <dataset>/days/<YYYY-MM-DD>.json     a daily partition's manifest (datasets partitioned by day)
"""

from __future__ import annotations

from cog_assets.store.objects import storage_key

CATALOG_KEY = "catalog.json"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def granule_key(dataset_id: str, file_name: str) -> str:
    return storage_key(dataset_id, "granules", file_name)


def record_key(dataset_id: str, concept_id: str) -> str:
    return storage_key(dataset_id, "cmr", f"{concept_id}.json")


def cog_key(dataset_id: str, item_id: str) -> str:
    return storage_key(dataset_id, "cogs", f"{item_id}.tif")


def item_key(dataset_id: str, item_id: str) -> str:
    return storage_key(dataset_id, "items", f"{item_id}.json")


def deletion_key(dataset_id: str, concept_id: str) -> str:
    return storage_key(dataset_id, "deleted", f"{concept_id}.json")


def collection_key(dataset_id: str) -> str:
    return storage_key(dataset_id, "collection.json")


def day_manifest_key(dataset_id: str, day: str) -> str:
    return storage_key(dataset_id, "days", f"{day}.json")
