"""What a discovery tick should do, decided in plain functions (the sensors only apply it).

Given what a source published since the last tick and what the instance already has, a plan
says which partitions to add (in data-time order) or delete (a revision moved a granule to
another date), which to run and why the others are not run, and which deletions still need
withdrawing. Any source that yields records with an id, a revision, a publication time and a
data time (CMR granules, objects in a bucket) uses the same plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol


class Discovered(Protocol):
    """What a plan needs to know of one discovered revision."""

    @property
    def concept_id(self) -> str: ...
    @property
    def revision_id(self) -> int: ...
    @property
    def revised(self) -> datetime: ...
    @property
    def end(self) -> datetime | None: ...
    @property
    def begin(self) -> datetime | None: ...


NOT_RUN_HISTORY = "published before the sensor was switched on (history: backfill it from the UI)"
RUN_PUBLISHED = "published or revised since the sensor was switched on"
RUN_RECENT = "data within the recent window (sensor.auto_run_days)"
RUN_PROCESSED = "revision of a granule processed before"
# CMR's clock is not ours, and some of its date forms drop the milliseconds
CLOCK_TOLERANCE = timedelta(minutes=1)


@dataclass
class Plan:
    """A tick's decisions; ``runs`` maps partition keys to the revisions that make them due."""

    add: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    runs: dict[str, list[Discovered]] = field(default_factory=dict)
    ran: Counter = field(default_factory=Counter)
    not_run: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = [f"{n} {why}" for why, n in (self.ran + self.not_run).items()]
        return (
            f"{len(self.add)} partitions added, {len(self.delete)} moved/deleted, "
            f"{sum(self.ran.values())} granules to run in {len(self.runs)} partitions, "
            f"{sum(self.not_run.values())} not run" + (f" ({'; '.join(reasons)})" if reasons else "")
        )


def why_run(record: Discovered, started: datetime, now: datetime, recent_days: float, processed: bool) -> str | None:
    """The reason a revision is processed without anyone clicking, or None."""
    if record.revised >= started - CLOCK_TOLERANCE:
        return RUN_PUBLISHED
    when = record.end or record.begin
    if when is not None and when >= now - timedelta(days=recent_days):
        return RUN_RECENT
    if processed:
        return RUN_PROCESSED
    return None


def plan_granules(
    records: Iterable[Discovered],
    key_for: Callable[[Discovered], str],
    existing: dict[str, str] | None,
    is_processed: Callable[[str], bool],
    started: datetime,
    now: datetime,
    recent_days: float,
    published: Collection[str] = (),
) -> Plan:
    """Decide a tick. ``existing`` maps concept-ids to their partition keys when partitions are
    registered (None: partitions exist by the calendar, e.g. days). ``published``: ids the source
    is known to have published or revised after the switch-on whatever their dates say (objects
    new or overwritten since the sensor's last complete listing)."""
    plan = Plan()
    for record in records:
        key = key_for(record)
        old = existing.get(record.concept_id) if existing is not None else None
        if existing is not None and old != key:
            plan.add.append(key)
            if old is not None:  # a revision moved the granule's date: its partition moves
                plan.delete.append(old)
        reason = RUN_PUBLISHED if record.concept_id in published else why_run(
            record, started, now, recent_days, old is not None and is_processed(old))
        if reason is None:
            plan.not_run[NOT_RUN_HISTORY] += 1
            continue
        plan.ran[reason] += 1
        plan.runs.setdefault(key, []).append(record)
    plan.add.sort()  # data-time order (keys begin with the date)
    return plan


def ranges(keys: Sequence[str], order: Callable[[str], int], size: int) -> list[tuple[str, str, list[str]]]:
    """Group keys into runs of consecutive partitions (by ``order``), each at most ``size`` long:
    one run per range pays Dagster's per-run cost once for many granules."""
    groups: list[tuple[str, str, list[str]]] = []
    current: list[str] = []
    for key in sorted(keys, key=order):
        if current and (order(key) != order(current[-1]) + 1 or len(current) == size):
            groups.append((current[0], current[-1], current))
            current = []
        current.append(key)
    if current:
        groups.append((current[0], current[-1], current))
    return groups


@dataclass
class DeletionPlan:
    """Deletions to withdraw now, and where the next tick must look from."""

    withdraw: list = field(default_factory=list)
    waiting: int = 0  # already being withdrawn by a run
    done: int = 0  # not ours, or withdrawn already
    since: datetime | None = None


def plan_deletions(
    entries: Sequence, is_pending: Callable[[Any], bool], in_flight: set[str], window_start: datetime, budget: int
) -> DeletionPlan:
    """Which CMR deletions to withdraw (at most ``budget`` checked per tick). The next tick
    looks from the oldest one still pending, so the watermark never passes a deletion that
    has not been carried out; with none pending, from ``window_start`` (the lookback behind
    this read: CMR indexes deletions asynchronously too)."""
    plan = DeletionPlan(since=window_start)
    first_pending: datetime | None = None
    for n, entry in enumerate(entries):
        if n == budget:
            first_pending = first_pending or entry.deleted_at
            break
        if not is_pending(entry):
            plan.done += 1
        else:
            first_pending = first_pending or entry.deleted_at
            if entry.concept_id in in_flight:
                plan.waiting += 1
            elif entry.concept_id not in {e.concept_id for e in plan.withdraw}:
                plan.withdraw.append(entry)
    if first_pending is not None:
        plan.since = min(first_pending, window_start)
    return plan
