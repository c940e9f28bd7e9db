"""Where each thing is stored.

Storage layout under COG_ASSETS_STORAGE (a static STAC catalog that pystac can walk):

    catalog.json                                      root catalog linking every collection
    <dataset>/collection.json                         STAC collection
    <dataset>/items/<YYYY>/<MM>/<item>.json           the granule's live STAC item (its data's month)
    <dataset>/items/<YYYY>[/<MM>]/catalog.json        year and month sub-catalogs (``stac.catalog``)
    <dataset>/cmr/<concept-id>.json                   the live revision's CMR record (commit pointer)
    <dataset>/granules/<concept-id>/r<rev>/<file>     the original granule file of one revision
    <dataset>/granules/<concept-id>/r<rev>/record.json   that revision's CMR record (file complete)
    <dataset>/cogs/<concept-id>/r<rev>/<item>.<sha>.tif  COG of one revision (sha: its content)
    <dataset>/cogs/<concept-id>/r<rev>/<item>.<sha>.png  its thumbnail
    <dataset>/deleted/<concept-id>.json               tombstone of a granule CMR deleted
    <dataset>/days/<YYYY-MM-DD>.json                  a daily partition's manifest (by-day datasets)

Everything a revision needs lives under its own ``<concept-id>/r<rev>`` prefixes, and a COG's
name carries its checksum, so processing a new revision (or reprocessing one) never overwrites
an object the live item points at. The live item switches at one commit point; then whatever it
no longer references under the concept's prefixes is removed (``processing.revisions``).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from cog_assets.store.objects import storage_key

CATALOG_KEY = "catalog.json"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
RECORD_FILE = "record.json"
_REVISION = re.compile(r"^r(\d+)$")


def revision_folder(revision: int) -> str:
    return f"r{revision}"


def revision_of(folder: str) -> int | None:
    """The revision a ``r<rev>`` folder name stands for (None for anything else)."""
    match = _REVISION.match(folder)
    return int(match.group(1)) if match else None


def granules_prefix(dataset_id: str, concept_id: str) -> str:
    return storage_key(dataset_id, "granules", concept_id) + "/"


def cogs_prefix(dataset_id: str, concept_id: str) -> str:
    return storage_key(dataset_id, "cogs", concept_id) + "/"


def granule_key(dataset_id: str, concept_id: str, revision: int, file_name: str) -> str:
    return storage_key(dataset_id, "granules", concept_id, revision_folder(revision), file_name)


def staged_record_key(dataset_id: str, concept_id: str, revision: int) -> str:
    return storage_key(dataset_id, "granules", concept_id, revision_folder(revision), RECORD_FILE)


def cog_key(dataset_id: str, concept_id: str, revision: int, item_id: str, sha256: str) -> str:
    return storage_key(dataset_id, "cogs", concept_id, revision_folder(revision), f"{item_id}.{sha256[:12]}.tif")


def record_key(dataset_id: str, concept_id: str) -> str:
    return storage_key(dataset_id, "cmr", f"{concept_id}.json")


def item_key(dataset_id: str, item_id: str, when: datetime) -> str:
    """Under the UTC month of the item's datetime (the static catalog's sub-catalogs)."""
    month = when.astimezone(timezone.utc)
    return storage_key(dataset_id, "items", f"{month:%Y}", f"{month:%m}", f"{item_id}.json")


GRANULE_MEDIA_TYPES = {".tif": "image/tiff", ".tiff": "image/tiff", ".nc": "application/x-netcdf"}


def granule_media_type(file_name: str) -> str:
    """The stored granule file's content type, from its extension (HDF5 unless it says otherwise)."""
    suffix = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    return GRANULE_MEDIA_TYPES.get(suffix, "application/x-hdf5")


def thumbnail_key(cog: str) -> str:
    """The thumbnail beside a COG."""
    return cog[: -len(".tif")] + ".png"


def deletion_key(dataset_id: str, concept_id: str) -> str:
    return storage_key(dataset_id, "deleted", f"{concept_id}.json")


def collection_key(dataset_id: str) -> str:
    return storage_key(dataset_id, "collection.json")


def day_manifest_key(dataset_id: str, day: str) -> str:
    return storage_key(dataset_id, "days", f"{day}.json")
