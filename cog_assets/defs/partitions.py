"""What one Dagster partition of a dataset's chain is: the dataset's ``partitioning`` setting as
one strategy object, used by the chain asset (which granules a run works on, what a partition's
materialization says) and by the sensor (which key a granule has, how keys are ordered).

``by: granule`` — a dynamic partition per granule, key ``<YYYY-MM-DD>_<granule id>`` (the UTC
day its data begins, so the UI lists and selects granules by date; the id is CMR's concept-id,
or an object's stem for an S3 source), added by the sensor in data-time order. ``by: day`` — a daily partition per UTC day holding every granule that begins
that day: Dagster knows the partitions from the calendar (nothing to register) and stores their
status as time ranges; ~10,500 days stand for GPM IMERG's ~500,000 half-hourly granules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    PartitionsDefinition,
)

from cog_assets.dataset import DatasetConfig
from cog_assets.processing.chain import STEPS, GranuleOutcome, Services, stored_metadata
from cog_assets.processing.days import (
    DAY_FORMAT,
    day_of,
    remove_from_manifest,
    write_day_manifest,
)
from cog_assets.sources.cmr.records import GranuleRecord

# the id: a concept-id (G<digits>-<PROVIDER>) or an object's stem; never a comma (Dagster's
# separator for key lists) nor anything that could leave a storage prefix
GRANULE_KEY = re.compile(r"^(\d{4}-\d{2}-\d{2})_([A-Za-z0-9][A-Za-z0-9._+-]{0,254})$")
Log = Callable[[str], None]


@dataclass(frozen=True)
class PartitionWork:
    """One partition of a run: the granules to process, each with what CMR said of it."""

    key: str
    granules: list[tuple[str, GranuleRecord | str | None]]


Results = list[tuple[str, GranuleOutcome]]


class ByGranule:
    """One dynamic partition per granule."""

    by_day = False

    def __init__(self, dataset: DatasetConfig) -> None:
        self.dataset = dataset
        self.partitions_def: PartitionsDefinition = DynamicPartitionsDefinition(name=dataset.partitions_name)

    @staticmethod
    def key_for(record: GranuleRecord) -> str:
        when = record.begin or record.end
        assert when is not None  # records without a temporal extent are rejected at parsing
        return f"{when.astimezone(timezone.utc):{DAY_FORMAT}}_{record.concept_id}"

    @staticmethod
    def concept_of(key: str) -> str:
        match = GRANULE_KEY.match(key)
        if match is None:
            raise ValueError(
                f"partition key {key!r} is not <YYYY-MM-DD>_<granule id>: it was registered by an "
                "older version; see README, 'Upgrading an instance'"
            )
        return match.group(2)

    def work(self, svc: Services, keys: Sequence[str], staging: bool, log: Log) -> list[PartitionWork]:
        """Each partition's granule with its current record at the source (CMR: one query per
        100 granules, not one per granule; also when only later steps are selected, because a
        granule never staged is staged in the same run)."""
        concepts = {key: self.concept_of(key) for key in keys}
        found = svc.source.current(list(concepts.values()))
        return [PartitionWork(key, [(concept, found.get(concept))]) for key, concept in concepts.items()]

    def skips_current(self, steps: set[str], reprocess: bool) -> bool:
        """A granule partition the user materializes is redone (the API policy still applies)."""
        return False

    def materialize(self, svc: Services, key: str, results: Results, steps: set[str], log: Log) -> dict[str, dict] | None:
        """Each completed step's metadata; None when the granule failed."""
        (_, outcome), = results
        if outcome.error:
            return None
        return {done.step: done.metadata for done in outcome.done}


class ByDay:
    """One daily partition per UTC day; a day's granules succeed or fail one by one inside it."""

    by_day = True

    def __init__(self, dataset: DatasetConfig) -> None:
        self.dataset = dataset
        start = dataset.query.temporal_start
        assert start is not None  # DatasetConfig requires it for by: day
        end = dataset.query.temporal_end
        self.partitions_def = DailyPartitionsDefinition(
            start_date=start.astimezone(timezone.utc).strftime(DAY_FORMAT),
            end_date=(_day_after(end).strftime(DAY_FORMAT) if end else None),
            timezone="UTC",
            end_offset=1,  # today is a partition too: near-real-time granules run the day they arrive
        )

    @staticmethod
    def key_for(record: GranuleRecord) -> str:
        day = day_of(record)
        assert day is not None
        return day

    def work(self, svc: Services, keys: Sequence[str], staging: bool, log: Log) -> list[PartitionWork]:
        """Every granule CMR lists as beginning on each day (one temporal query for the run)."""
        days = sorted(keys)
        start, end = day_window(days[0])[0], day_window(days[-1])[1]
        records, rejected = svc.cmr.granules_between(self.dataset.query, start, end - timedelta(milliseconds=1))
        for problem in rejected:
            log(f"skipped an unusable CMR record: {problem}")
        by_day: dict[str, list[tuple[str, GranuleRecord | str | None]]] = {day: [] for day in keys}
        for record in sorted(records, key=lambda r: (r.begin or r.end or start, r.concept_id)):
            if (day := day_of(record)) in by_day:
                by_day[day].append((record.concept_id, record))
        return [PartitionWork(day, by_day[day]) for day in keys]

    def skips_current(self, steps: set[str], reprocess: bool) -> bool:
        """A day's re-run redoes only what is not live at CMR's revision (all steps selected)."""
        return steps == set(STEPS) and not reprocess

    def materialize(self, svc: Services, key: str, results: Results, steps: set[str], log: Log) -> dict[str, dict] | None:
        """The day's manifest, and one materialization per selected step pointing at it; None
        when a granule of the day failed (its good granules stay live)."""
        for _, outcome in results:  # a revision that moved a granule here leaves its old day
            old_day = day_of(outcome.previous) if outcome.previous else None
            if old_day and old_day != key:
                remove_from_manifest(svc.archive, self.dataset.id, old_day, outcome.concept_id)
        pairs = [(outcome.record, outcome) for _, outcome in results if outcome.record is not None]
        manifest = write_day_manifest(svc, key, pairs)
        statuses = [outcome.status for _, outcome in results]
        log(
            f"day {key}: {statuses.count('processed')} granules processed, {statuses.count('current')} "
            f"already current, {statuses.count('failed')} failed ({len(results)} in CMR, "
            f"{self.dataset.partitioning.granules_per_day} expected)"
        )
        if "failed" in statuses:
            return None
        summary = {
            **stored_metadata(manifest),
            "granules": len(results),
            "granules_expected": self.dataset.partitioning.granules_per_day,
            "granules_processed": statuses.count("processed"),
            "granules_already_current": statuses.count("current"),
        }
        executed = steps | {d.step for _, o in results for d in o.done}  # with the steps some granules needed
        return {
            step: {**summary, "bytes_written": sum(d.metadata.get("size_bytes", 0) for _, o in results for d in o.done if d.step == step)}
            for step in STEPS
            if step in executed
        }


PartitionStrategy = ByGranule | ByDay


def strategy_for(dataset: DatasetConfig) -> PartitionStrategy:
    return ByDay(dataset) if dataset.by_day else ByGranule(dataset)


def _day_after(moment: datetime) -> date:
    """The first day not covered by a temporal end (exclusive end of the partitions)."""
    moment = moment.astimezone(timezone.utc)
    day = moment.date()
    return day if moment.time() == time(0) else day + timedelta(days=1)


def day_window(day: str) -> tuple[datetime, datetime]:
    """[start, end) of a daily partition key, in UTC."""
    start = datetime.strptime(day, DAY_FORMAT).replace(tzinfo=timezone.utc)
    return start, start + timedelta(days=1)
