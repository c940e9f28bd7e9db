"""How a dataset's granules map to Dagster partitions (the dataset's ``partitioning`` setting).

``by: granule`` — a dynamic partition per CMR concept-id, added by the sensor: every granule is
its own partition in the UI. ``by: day`` — a daily partition per UTC day holding every granule
that *starts* that day: Dagster knows the partitions from the calendar (nothing to register),
stores their status as time ranges, and ~9,700 days stand for GPM IMERG's ~400,000 half-hourly
granules. A day's granules are still processed, and fail, one by one inside its run.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    PartitionsDefinition,
)

from cog_assets.dataset import DatasetConfig
from cog_assets.sources.cmr.records import GranuleRecord

DAY_FORMAT = "%Y-%m-%d"


def build_partitions_def(dataset: DatasetConfig) -> PartitionsDefinition:
    if not dataset.by_day:
        return DynamicPartitionsDefinition(name=dataset.partitions_name)
    start = dataset.cmr.temporal_start
    assert start is not None  # DatasetConfig requires it for by: day
    end = dataset.cmr.temporal_end
    return DailyPartitionsDefinition(
        start_date=start.astimezone(timezone.utc).strftime(DAY_FORMAT),
        end_date=(_day_after(end).strftime(DAY_FORMAT) if end else None),
        timezone="UTC",
        # today is a partition too: near-real-time granules run the day they arrive
        end_offset=1,
    )


def _day_after(moment: datetime) -> date:
    """The first day not covered by a temporal end (exclusive end of the partitions)."""
    moment = moment.astimezone(timezone.utc)
    day = moment.date()
    return day if moment.time() == time(0) else day + timedelta(days=1)


def day_of(record: GranuleRecord) -> str | None:
    """The partition (UTC day) a granule belongs to: the day its data begins."""
    when = record.begin or record.end
    return when.astimezone(timezone.utc).strftime(DAY_FORMAT) if when else None


def day_window(day: str) -> tuple[datetime, datetime]:
    """[start, end) of a daily partition key, in UTC."""
    start = datetime.strptime(day, DAY_FORMAT).replace(tzinfo=timezone.utc)
    return start, start + timedelta(days=1)
