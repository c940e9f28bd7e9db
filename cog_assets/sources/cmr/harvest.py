"""Incremental harvest of a dataset's granule revisions from CMR.

The cursor is a revision-date watermark plus the (concept-id, revision-id) pairs already seen
at exactly that date: CMR's ``revision_date[]=<watermark>,`` is inclusive, so the next query
returns them again and they must be dropped. A harvest stops at a per-tick budget (granules
and seconds) and the next tick resumes from the watermark, so a long history is paged across
ticks without keeping CMR-Search-After tokens (which expire) in the cursor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime

from cog_assets.dataset import CmrQuery
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.records import GranuleRecord

CURSOR_VERSION = 1


def _instant(revision_date: str) -> datetime:
    return datetime.fromisoformat(revision_date.replace("Z", "+00:00"))


def revision_token(record: GranuleRecord) -> str:
    return f"{record.concept_id}:{record.revision_id}"


@dataclass(frozen=True)
class HarvestCursor:
    watermark: str | None = None
    boundary: frozenset[str] = frozenset()
    deleted_since: str | None = None  # revision-date from which CMR deletions are still to see

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "watermark": self.watermark,
                "boundary": sorted(self.boundary),
                "deleted_since": self.deleted_since,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> HarvestCursor:
        if not text:
            return cls()
        data = json.loads(text)
        if data.get("v") != CURSOR_VERSION:
            raise ValueError(
                f"sensor cursor version {data.get('v')!r} is not {CURSOR_VERSION}; reset the "
                "sensor's cursor in the UI to harvest again from the start"
            )
        return cls(
            watermark=data["watermark"],
            boundary=frozenset(data["boundary"]),
            deleted_since=data.get("deleted_since"),
        )


@dataclass
class Harvest:
    records: list[GranuleRecord]
    cursor: HarvestCursor
    complete: bool
    pages: int = 0
    hits: int | None = None
    rejected: list[str] = field(default_factory=list)


def harvest(
    cmr: CmrClient,
    query: CmrQuery,
    cursor: HarvestCursor,
    max_granules: int,
    max_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> Harvest:
    """New granule revisions since the cursor, oldest first, within the budget.

    Raises ``CmrError`` if CMR fails; the caller then keeps its old cursor, so nothing is
    skipped. Whole pages are consumed, so the returned cursor is exact.
    """
    started = clock()
    watermark = cursor.watermark
    boundary = set(cursor.boundary)
    latest = _instant(watermark) if watermark else None
    by_concept: dict[str, GranuleRecord] = {}
    rejected: list[str] = []
    pages = 0
    hits = None
    complete = True
    with closing(cmr.iter_pages(query, revision_since=cursor.watermark)) as page_iter:
        for page in page_iter:
            pages += 1
            hits = page.hits if hits is None else hits
            rejected += page.rejected
            for record in page.records:
                token = revision_token(record)
                if token in cursor.boundary:
                    continue
                instant = _instant(record.revision_date)
                if latest is None or instant > latest:
                    latest, watermark, boundary = instant, record.revision_date, {token}
                elif instant == latest:
                    boundary.add(token)
                by_concept.pop(record.concept_id, None)
                by_concept[record.concept_id] = record
            if len(by_concept) >= max_granules or clock() - started >= max_seconds:
                complete = False
                break
    return Harvest(
        records=list(by_concept.values()),
        cursor=replace(cursor, watermark=watermark, boundary=frozenset(boundary)),
        complete=complete,
        pages=pages,
        hits=hits,
        rejected=rejected,
    )
