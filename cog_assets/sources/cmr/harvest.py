"""Incremental harvest of a dataset's granules from CMR, as CMR really behaves.

The cursor remembers when the sensor was first switched on (``started``): granules CMR
publishes or revises after that are processed automatically, whatever their data date (IMERG
Final appears ~3.5 months after its data). Two phases:

* ``history`` (datasets partitioned by granule): the collection as it stands, paged in
  data-time order (``sort_key[]=start_date``) so partitions are registered in that order.
* ``incremental``: revisions by ``revision_date``, oldest first. CMR indexes asynchronously,
  so a record can become searchable after later revision dates are visible: each read starts
  ``lookback`` before the previous read began (or at the watermark, if that is earlier), and
  what was already read
  there is dropped by (concept-id, revision-id) (``seen``), so nothing is skipped and nothing
  is requested twice, also across reads cut short by the tick's budget (a long catch-up).

Every CMR date is parsed (CMR mixes ``Z``, ``+0000`` and fractional seconds). A harvest stops
at a per-tick budget; the cursor is exact because whole pages are consumed.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from cog_assets.dataset import CmrQuery
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.records import GranuleRecord, cmr_time, parse_cmr_time

CURSOR_VERSION = 2
_COMPRESS_ABOVE = 500
_TRUNCATION = timedelta(seconds=1)  # seen entries; beyond this the cursor stores them zlib-compressed


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def _opt(value: str | None) -> datetime | None:
    return parse_cmr_time(value) if value else None


@dataclass(frozen=True)
class HarvestCursor:
    started: datetime | None = None  # when the sensor was first switched on
    history_done: bool = False
    history_after: datetime | None = None  # start date of the last history record read
    watermark: datetime | None = None  # latest revision date read incrementally
    stalled: bool = False  # the last read stopped at the budget without finding anything new
    last_read: datetime | None = None  # when the last incremental read began (our clock)
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # concept → (revision, ms)
    collection_id: str | None = None
    deleted_since: datetime | None = None  # the oldest CMR deletion not yet carried out
    retried_until: float | None = None  # failed runs up to this time were looked at (defs.retries)

    def to_json(self) -> str:
        seen = {k: list(v) for k, v in sorted(self.seen.items())}
        packed: object = seen
        if len(seen) > _COMPRESS_ABOVE:
            packed = base64.b64encode(zlib.compress(json.dumps(seen).encode(), 9)).decode()
        times = {
            k: cmr_time(v) if v else None
            for k, v in (("started", self.started), ("history_after", self.history_after), ("watermark", self.watermark),
                         ("last_read", self.last_read), ("deleted_since", self.deleted_since))
        }
        return json.dumps(
            {"v": CURSOR_VERSION, **times, "history_done": self.history_done, "stalled": self.stalled,
             "collection_id": self.collection_id, "retried_until": self.retried_until, "seen": packed},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> HarvestCursor:
        if not text:
            return cls()
        data = json.loads(text)
        if data.get("v") == 1:  # before publication-based automation: all after its watermark is new
            mark = _opt(data.get("watermark"))
            return cls(started=mark, history_done=True, watermark=mark, deleted_since=_opt(data.get("deleted_since")))
        if data.get("v") != CURSOR_VERSION:
            raise ValueError(
                f"sensor cursor version {data.get('v')!r} is not {CURSOR_VERSION}; reset the "
                "sensor's cursor in the UI to harvest again from the start"
            )
        seen = data["seen"]
        if isinstance(seen, str):
            seen = json.loads(zlib.decompress(base64.b64decode(seen)))
        return cls(
            started=_opt(data["started"]), history_done=data["history_done"], history_after=_opt(data["history_after"]),
            watermark=_opt(data["watermark"]), stalled=data.get("stalled", False), last_read=_opt(data.get("last_read")),
            seen={k: (int(v[0]), int(v[1])) for k, v in seen.items()}, collection_id=data["collection_id"],
            deleted_since=_opt(data["deleted_since"]), retried_until=data.get("retried_until"),
        )


@dataclass
class Harvest:
    records: list[GranuleRecord]
    cursor: HarvestCursor
    complete: bool
    phase: str
    pages: int = 0
    hits: int | None = None
    rejected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Budget:
    granules: int
    seconds: float
    lookback: timedelta
    clock: Callable[[], float] = time.monotonic


def harvest(cmr: CmrClient, query: CmrQuery, cursor: HarvestCursor, budget: Budget, with_history: bool, now: datetime) -> Harvest:
    """What CMR published since the cursor, within the budget; raises ``CmrError`` if CMR fails
    (the caller then keeps its old cursor, so nothing is skipped)."""
    if cursor.started is None:
        cursor = replace(cursor, started=now, watermark=now - budget.lookback, history_done=not with_history)
    if not cursor.history_done:
        return _history(cmr, query, cursor, budget)
    return _incremental(cmr, query, cursor, budget, now)


def _history(cmr: CmrClient, query: CmrQuery, cursor: HarvestCursor, budget: Budget) -> Harvest:
    """The collection in data-time order, resuming after the last start date read (inclusive:
    the caller drops granules it already registered)."""
    assert cursor.started is not None
    started, recent = budget.clock(), cursor.started - budget.lookback
    result = Harvest([], cursor, complete=True, phase="history")
    after, seen = cursor.history_after, dict(cursor.seen)
    window = (after, None) if after else None
    with closing(cmr.iter_pages(query, window=window, sort_key="start_date")) as pages:
        for page in pages:
            _count(result, page)
            for record in page.records:
                known = seen.get(record.concept_id)
                if known is not None and known[0] >= record.revision_id:
                    continue  # read already (the resume point is inclusive)
                result.records.append(record)
                after = max(after, record.begin) if after and record.begin else (record.begin or after)
                if record.revised >= recent:  # the incremental phase will read it again
                    seen[record.concept_id] = (record.revision_id, _ms(record.revised))
            if len(result.records) >= budget.granules or budget.clock() - started >= budget.seconds:
                result.complete = False
                break
    result.cursor = replace(cursor, history_after=after, history_done=result.complete, seen=seen)
    return result


def _incremental(cmr: CmrClient, query: CmrQuery, cursor: HarvestCursor, budget: Budget, now: datetime) -> Harvest:
    assert cursor.watermark is not None
    start = cursor.watermark
    if cursor.last_read is not None and not cursor.stalled:  # every read re-covers the lookback
        start = min(start, cursor.last_read - budget.lookback)
    began, watermark, seen = budget.clock(), cursor.watermark, dict(cursor.seen)
    by_concept: dict[str, GranuleRecord] = {}
    result = Harvest([], cursor, complete=True, phase="incremental")
    with closing(cmr.iter_pages(query, revision_since=start)) as pages:
        for page in pages:
            _count(result, page)
            for record in page.records:
                known = seen.get(record.concept_id)
                if known is not None and known[0] >= record.revision_id:
                    continue
                seen[record.concept_id] = (record.revision_id, _ms(record.revised))
                watermark = max(watermark, record.revised)
                by_concept.pop(record.concept_id, None)
                by_concept[record.concept_id] = record
            if len(by_concept) >= budget.granules or budget.clock() - began >= budget.seconds:
                result.complete = False
                break
    # a read that only re-read what it had seen, and hit the budget, skips the overlap once so
    # the next one makes progress (a reprocessing campaign can put more than a tick's budget
    # into the lookback window)
    stalled = not result.complete and not by_concept
    next_start = watermark if stalled else min(watermark, now - budget.lookback)
    # some of CMR's date forms drop the milliseconds: a date read as T may stand for T + 0.999 s,
    # and CMR (which knows the exact time) returns it again from a watermark up to 1 s after T
    kept = {c: v for c, v in seen.items() if v[1] >= _ms(next_start - _TRUNCATION)}
    result.records = list(by_concept.values())
    result.cursor = replace(
        cursor, watermark=watermark, stalled=stalled, last_read=now, seen=kept
    )
    return result


def _count(result: Harvest, page) -> None:
    result.pages += 1
    result.hits = page.hits if result.hits is None else result.hits
    result.rejected += page.rejected


def recent_window(cmr: CmrClient, query: CmrQuery, since: datetime) -> tuple[list[GranuleRecord], list[str]]:
    """Granules whose data reaches into [since, now]: the optional recent window a dataset
    partitioned by day runs when its sensor is first switched on."""
    records: list[GranuleRecord] = []
    rejected: list[str] = []
    for page in cmr.iter_pages(query, window=(since, None)):
        records += page.records
        rejected += page.rejected
    return records, rejected
