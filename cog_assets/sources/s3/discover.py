"""Incremental discovery of a bucket prefix, a tick at a time (the S3 sensor's harvest).

A bucket has no change feed, so discovery compares listings with what is registered:

* A **pass** lists the whole prefix in key order, spread over ticks: each tick resumes after
  the last name it listed (``StartAfter``) and stops at the tick's budget (objects listed,
  seconds). A pass starts when the sensor is switched on, then at most every
  ``sensor.relist_minutes``.
* Between passes a tick lists only the names after the greatest one seen (``tail``): new
  date-named files sort last, so an idle tick is one short request.

What a listing reports: objects whose stem is not registered (new), registered ones modified
since the **watermark** (the previous pass's start less ``lookback``; overwrites, reported once
per revision through ``reported``), and registered stems that are gone. A stem's names all lie
in ``[stem, stem + '/')`` (its extension starts with '.', which sorts before '/'), so a tick
knows a stem is gone once its listed range covers that interval, without remembering the
whole pass; the few stems straddling a tick's end are carried to the next one (``carry``).
Objects that do not match the pattern are counted, matching ones that cannot be granules are
refused with a reason, and only the first object of a stem in key order is the granule.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone

from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.sources.s3.bucket import PAGE_SIZE, Bucket, ListedObject
from cog_assets.sources.s3.config import S3Source
from cog_assets.sources.s3.objects import Refused, identify, make_record

CURSOR_VERSION = 1
SAMPLE = 5
_COMPRESS_ABOVE = 500


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class ListingCursor:
    started: datetime | None = None  # when the sensor was first switched on
    in_pass: bool = False
    after: str | None = None  # the last name the pass in progress listed
    pass_began: datetime | None = None
    last_pass: datetime | None = None  # when the last complete pass began
    tail: str | None = None  # the greatest name ever listed
    carry: dict[str, str] = field(default_factory=dict)  # stems straddling the last tick's end → name
    reported: dict[str, int] = field(default_factory=dict)  # stem → revision reported since the watermark
    counts: dict[str, int] = field(default_factory=dict)  # the pass so far, or the last complete one
    retried_until: float | None = None  # failed runs up to this time were looked at (defs.retries)

    def to_json(self) -> str:
        data = asdict(self)
        for name in ("started", "pass_began", "last_pass"):
            data[name] = data[name].isoformat() if data[name] else None
        if len(self.reported) > _COMPRESS_ABOVE:  # after a bulk upload: until the watermark passes it
            packed = json.dumps(self.reported, separators=(",", ":"), sort_keys=True).encode()
            data["reported"] = base64.b64encode(zlib.compress(packed, 9)).decode()
        return json.dumps({"v": CURSOR_VERSION, **data}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ListingCursor:
        if not text:
            return cls()
        data = json.loads(text)
        if data.pop("v", None) != CURSOR_VERSION:
            raise ValueError("the S3 sensor's cursor has another version; reset it in the UI to list again")
        for name in ("started", "pass_began", "last_pass"):
            data[name] = _time(data[name])
        if isinstance(data["reported"], str):
            data["reported"] = json.loads(zlib.decompress(base64.b64decode(data["reported"])))
        return cls(**data)

    def watermark(self, lookback: timedelta) -> datetime:
        """Objects modified at or after this are checked as overwrites of registered stems.
        Whole seconds, as S3's LastModified: an overwrite later in the second a pass began
        is stamped with that second, before the pass's exact start."""
        assert self.started is not None
        return (self.last_pass or self.started).replace(microsecond=0) - lookback


@dataclass(frozen=True)
class ListingBudget:
    objects: int
    seconds: float
    lookback: timedelta
    relist: timedelta
    page_size: int = PAGE_SIZE
    clock: Callable[[], float] = time.monotonic


@dataclass
class Listing:
    """One tick's listing: what to register or run, what is gone, and what was skipped."""

    mode: str  # "pass" or "tail"
    cursor: ListingCursor
    records: list[GranuleRecord] = field(default_factory=list)  # new, or overwritten since the watermark
    deleted: list[str] = field(default_factory=list)  # registered stems no longer listed
    # stems new, or overwritten, since a complete pass looked: published after the switch-on
    # whatever their LastModified says (a multipart upload's is when it began)
    published: set[str] = field(default_factory=set)
    listed: int = 0
    pages: int = 0
    matching: int = 0
    not_matching: int = 0
    not_matching_sample: list[str] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    sub_folders: int = 0
    complete: bool = False  # the pass (or the tail listing) reached the end of the prefix

    def summary(self) -> str:
        sample = f" (e.g. {', '.join(self.not_matching_sample)})" if self.not_matching_sample else ""
        text = (f"{self.mode}: listed {self.listed} objects in {self.pages} pages; {self.matching} match the "
                f"pattern, {self.not_matching} do not{sample}, {len(self.refused)} refused; "
                f"{len(self.records)} new or overwritten, {len(self.deleted)} deleted")
        if self.sub_folders:
            text += f"; {self.sub_folders} sub-folders not listed (point another dataset at them)"
        return text + ("" if self.complete else "; more next tick")


def _start(cursor: ListingCursor, budget: ListingBudget, now: datetime) -> ListingCursor:
    """Switch on, and start a pass when one is due."""
    if cursor.started is None:
        cursor = replace(cursor, started=now)
    due = cursor.last_pass is None or now - cursor.last_pass >= budget.relist
    if not cursor.in_pass and due:
        cursor = replace(cursor, in_pass=True, after=None, pass_began=now, carry={}, counts={})
    return cursor


Eligible = Callable[[GranuleRecord, "str | None"], bool]


@dataclass
class _Tick:
    """What one tick knows while it classifies the objects it lists."""

    listing: Listing
    source: S3Source
    known: dict[str, str]  # registered stems → partition keys
    carry: dict[str, str]
    reported: dict[str, int]
    watermark: datetime
    since: datetime | None  # when the last complete pass began
    eligible: Eligible
    seen: dict[str, str] = field(default_factory=dict)  # stems listed by this tick → name

    def classify(self, obj: ListedObject) -> None:
        """Count one listed object and report it when it is new, or overwritten and due to run.

        After a complete pass (begun at ``since``), a stem not registered is new since then,
        and a registered one modified at or after ``since`` and not reported yet was overwritten
        since then: both are published after the switch-on, whatever the dates say."""
        listing = self.listing
        found = identify(self.source, obj)
        if found is None:
            listing.not_matching += 1
            if len(listing.not_matching_sample) < SAMPLE:
                listing.not_matching_sample.append(obj.name)
            return
        listing.matching += 1
        if isinstance(found, Refused):
            listing.refused.append(found)
            return
        stem, key = found.stem, self.known.get(found.stem)
        first = self.seen.get(stem) or self.carry.get(stem) or (key and listing.mode == "tail" and "a registered object")
        if first:
            listing.refused.append(Refused(obj.name, f"{first} has the same stem {stem!r}; only the first object "
                                                     "of a stem in key order is the granule. Rename one of them"))
            return
        self.seen[stem] = obj.name
        revision = int(obj.modified.timestamp())
        if key is not None and (obj.modified < self.watermark or self.reported.get(stem) == revision):
            return  # registered, and not overwritten since the last pass looked
        record = make_record(self.source, obj, found)
        if self.since is not None and (key is None or obj.modified >= self.since):
            listing.published.add(stem)
        due = stem in listing.published or self.eligible(record, key)
        if key is not None and not due:
            return  # an overwrite of history never processed: its backfill fetches the current revision
        if due:
            self.reported[stem] = revision
        listing.records.append(record)


def list_tick(
    bucket: Bucket,
    source: S3Source,
    cursor: ListingCursor,
    registered: Callable[[], dict[str, str]],
    eligible: Eligible,
    budget: ListingBudget,
    now: datetime,
) -> Listing:
    """List within the budget from where the cursor stands.

    ``registered`` maps the stems that are partitions already to their keys (called only when
    a listing finds something). ``eligible(record, key)`` says whether a revision would be run
    (the plan's rule): an overwrite nobody would run (history never processed) is not reported,
    since a backfill fetches the current revision anyway, and only eligible reports are
    remembered for de-duplication, which keeps the cursor small after a bulk upload.
    """
    # the first complete pass is what was there at the switch-on; whole seconds, as LastModified
    since = cursor.last_pass.replace(microsecond=0) if cursor.last_pass else None
    cursor = _start(cursor, budget, now)
    listing = Listing("pass" if cursor.in_pass else "tail", cursor)
    began, after = budget.clock(), (cursor.after if cursor.in_pass else cursor.tail)
    tick: _Tick | None = None
    last = after
    for page in bucket.pages(after, budget.page_size):
        listing.pages += 1
        listing.sub_folders += len(page.sub_folders)
        for obj in page.objects:
            listing.listed += 1
            last = obj.name
            tick = tick or _Tick(listing, source, registered(), cursor.carry, dict(cursor.reported),
                                 cursor.watermark(budget.lookback), since, eligible)
            tick.classify(obj)
        listing.complete = not page.more
        if listing.complete or listing.listed >= budget.objects or budget.clock() - began >= budget.seconds:
            break
    seen, reported = (tick.seen, tick.reported) if tick else ({}, dict(cursor.reported))
    if listing.mode == "pass":
        known = tick.known if tick else registered()
        listing.deleted = _gone(known, seen, cursor.carry, after, None if listing.complete else last)
    listing.cursor = _advance(cursor, listing, seen, reported, last, budget.lookback)
    return listing


def _gone(known: dict[str, str], seen: dict[str, str], carry: dict[str, str], low: str | None,
          high: str | None) -> list[str]:
    """Registered stems whose names all lie in the range this tick listed, (low, high], and
    that were not seen there (None: unbounded)."""
    gone = []
    for stem in known:
        top = stem + "/"
        if (low is not None and top <= low) or (high is not None and top > high):
            continue
        if stem not in seen and stem not in carry:
            gone.append(stem)
    return sorted(gone)


def _advance(cursor: ListingCursor, listing: Listing, seen: dict[str, str], reported: dict[str, int],
             last: str | None, lookback: timedelta) -> ListingCursor:
    """The cursor after this tick: the pass's position, counts, and what is carried."""
    tail = max(filter(None, (cursor.tail, last)), default=None)
    counts = dict(cursor.counts) if listing.mode == "pass" else {}
    for name in ("listed", "matching", "not_matching", "sub_folders"):
        counts[name] = counts.get(name, 0) + getattr(listing, name)
    counts["refused"] = counts.get("refused", 0) + len(listing.refused)
    if listing.mode == "tail":
        return replace(cursor, tail=tail, reported=_recent(reported, cursor.watermark(lookback)))
    if listing.complete:
        assert cursor.pass_began is not None
        done = replace(cursor, in_pass=False, after=None, last_pass=cursor.pass_began, carry={}, counts=counts, tail=tail)
        return replace(done, reported=_recent(reported, done.watermark(lookback)))
    carry = {s: n for s, n in {**cursor.carry, **seen}.items() if last is not None and s + "/" > last}
    return replace(cursor, after=last, carry=carry, counts=counts, tail=tail,
                   reported=_recent(reported, cursor.watermark(lookback)))


def _recent(reported: dict[str, int], watermark: datetime) -> dict[str, int]:
    """Reports still inside the overlap a later listing can read again."""
    floor = int(watermark.timestamp()) - 1
    return {stem: revision for stem, revision in reported.items() if revision >= floor}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
