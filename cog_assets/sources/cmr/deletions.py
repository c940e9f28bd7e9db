"""CMR deletions of a collection's granules: ``/search/deleted-granules.json``, scoped to the
collection (``parent_collection_id``, resolved once from its short name, version and provider).

CMR's list is provider-wide unless filtered (GES DISC deletes across hundreds of collections),
only reaches one year back, and writes its dates in mixed forms: every date is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cog_assets.dataset import CmrQuery
from cog_assets.sources.cmr.client import CmrClient, CmrError
from cog_assets.sources.cmr.records import cmr_time, parse_cmr_time

DELETIONS_LOOKBACK_LIMIT = timedelta(days=365)  # CMR refuses deleted-granules older than a year


@dataclass(frozen=True)
class DeletedGranule:
    """One entry of CMR's ``/search/deleted-granules.json``."""

    concept_id: str
    revision_date: str
    granule_ur: str | None = None
    parent_collection_id: str | None = None

    @property
    def deleted_at(self) -> datetime:
        return parse_cmr_time(self.revision_date)

    def as_json(self) -> dict[str, str | None]:
        return {
            "concept-id": self.concept_id,
            "revision-date": self.revision_date,
            "granule-ur": self.granule_ur,
            "parent-collection-id": self.parent_collection_id,
        }



def collection_concept_id(cmr: CmrClient, query: CmrQuery) -> str:
    """The collection's concept-id (``C…-PROVIDER``), which scopes deletions to it."""
    params = [("short_name", query.short_name), ("version", query.version), ("provider", query.provider)]
    response = cmr.get("/search/collections.umm_json", params)
    try:
        ids = [item["meta"]["concept-id"] for item in response.json()["items"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CmrError(f"CMR answered {response.request.url} with a body that is not a collections.umm_json result ({exc!r})") from None
    if len(ids) != 1:
        raise CmrError(
            f"CMR has {len(ids)} collections for {query.short_name} v{query.version} ({query.provider}), "
            "expected exactly one; check cmr.short_name, cmr.version and cmr.provider in the dataset file"
        )
    return ids[0]


def deleted_granules(cmr: CmrClient, query: CmrQuery, since: datetime, collection_id: str) -> list[DeletedGranule]:
    """The collection's granules CMR deleted at or after ``since``, oldest first (entries of
    other collections are dropped even if CMR returns them)."""
    params = [("provider", query.provider), ("revision_date", cmr_time(since)), ("parent_collection_id", collection_id)]
    response = cmr.get("/search/deleted-granules.json", params)
    try:
        entries = [
            DeletedGranule(
                concept_id=entry["concept-id"],
                revision_date=entry["revision-date"],
                granule_ur=entry.get("granule-ur"),
                parent_collection_id=entry.get("parent-collection-id"),
            )
            for entry in response.json()
        ]
        ours = [e for e in entries if e.parent_collection_id in (None, collection_id)]
        return sorted(ours, key=lambda e: (e.deleted_at, e.concept_id))
    except (ValueError, KeyError, TypeError) as exc:
        raise CmrError(
            f"CMR answered {response.request.url} with a body that is not a deleted-granules list ({type(exc).__name__}: {exc})"
        ) from None
