"""The CMR sensor's decisions, tick by tick, against the test CMR (no runs executed here).

Runs, storage and the STAC API after these decisions are in test_cmr_behaviour.py.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from dagster import SensorResult

from cog_assets.defs.sensors import GRANULES_TAG, REVISION_TAG
from cog_assets.sources.cmr.client import CmrError
from cog_assets.sources.cmr.harvest import HarvestCursor
from cog_assets.sources.cmr.records import parse_cmr_time

from .cmr_server import Fault
from .helpers import SensorHarness, add_omi_days, is_idle, now_utc, omi_file_name, partition_of, sensor_for

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture
def omi(datasets):
    return datasets["omdoao3e"]


def _chain_runs(result) -> list:
    return [r for r in result.run_requests if r.job_name == "omdoao3e_granule_job"]


def _granules_requested(result) -> int:
    return sum(int(r.tags[GRANULES_TAG]) for r in _chain_runs(result))


def _add_omi(cmr, day: datetime, **extra):
    return cmr.add_granule(short_name="OMDOAO3e", version="003", file_name=omi_file_name(day), begin=day,
                           end=day + timedelta(days=1, milliseconds=-1), **extra)


def test_2500_granules_registered_once_in_data_time_order(fake_cmr, omi, instance):
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 2500)
    harness = SensorHarness(sensor_for(omi, max_granules_per_tick=1000), fake_cmr.url, instance, page_size=500)
    sizes = []
    for _ in range(5):
        result = harness.tick()
        if is_idle(result):
            break
        sizes.append(sum(len(r.partition_keys) for r in result.dynamic_partitions_requests))
        assert result.run_requests == []  # history is for backfills, not surprise runs
    # the budget is checked between pages: a tick ends at the first page boundary past 1000
    assert sizes[0] == 1000 and len(sizes) == 3 and all(size < 1000 + 500 for size in sizes)
    counts = Counter(harness.added)
    assert len(counts) == 2500 and set(counts.values()) == {1}
    registered = list(instance.get_dynamic_partitions("omdoao3e_granules"))
    assert registered == sorted(registered)  # the UI's order is the data's time order
    assert {key.split("_", 1)[1] for key in registered} == set(fake_cmr._granules)
    assert registered[0] == f"2005-01-01_{registered[0].split('_', 1)[1]}"


def test_history_is_registered_in_data_time_order_even_when_published_out_of_order(fake_cmr, omi, instance):
    """CMR publishes reprocessed years in any order; the partitions still line up by date."""
    first = datetime(2005, 1, 1, tzinfo=timezone.utc)
    days = [first + timedelta(days=n) for n in (5, 1, 9, 0, 3, 7, 2, 8, 4, 6)]
    fake_cmr.add_many([
        dict(short_name="OMDOAO3e", version="003", file_name=omi_file_name(d), begin=d, end=d + timedelta(hours=23))
        for d in days
    ])
    harness = SensorHarness(sensor_for(omi, max_granules_per_tick=3), fake_cmr.url, instance, page_size=2)
    for _ in range(10):
        if is_idle(harness.tick()):
            break
    registered = list(instance.get_dynamic_partitions("omdoao3e_granules"))
    assert [key[:10] for key in registered] == [f"{first + timedelta(days=n):%Y-%m-%d}" for n in range(10)]


def test_idle_tick_adds_nothing(fake_cmr, omi, instance):
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 30)
    harness = SensorHarness(sensor_for(omi), fake_cmr.url, instance)
    assert isinstance(harness.tick(), SensorResult)
    harness.tick()  # the first incremental read after the history
    idle = harness.tick()
    assert is_idle(idle) and len(harness.added) == 30
    last = [r for r in fake_cmr.searches()][-1]
    assert any(name == "revision_date[]" for name, _ in last["params"])


def test_recent_data_runs_in_one_ranged_run_and_collection_is_published_first(fake_cmr, omi, instance):
    today = now_utc().replace(hour=0, minute=0, second=0, microsecond=0)
    add_omi_days(fake_cmr, omi, today - timedelta(days=20), 18)  # days 20..3 ago
    harness = SensorHarness(sensor_for(omi, auto_run_days=7), fake_cmr.url, instance)
    result = harness.tick()
    assert len(harness.added) == 18
    assert result.run_requests[0].job_name == "omdoao3e_collection_job"
    runs = _chain_runs(result)
    assert len(runs) == 1 and runs[0].tags[GRANULES_TAG] == "5"  # ending within 7 days: 7..3 days ago
    keys = sorted(harness.added)
    assert (runs[0].tags[RANGE_START], runs[0].tags[RANGE_END]) == (keys[-5], keys[-1])


def test_a_revision_yields_one_run_and_no_partition(fake_cmr, omi, instance):
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 2)
    harness = SensorHarness(sensor_for(omi), fake_cmr.url, instance)
    harness.tick()
    target = harness.added[0]
    fake_cmr.revise(target.split("_", 1)[1])
    result = harness.tick()
    assert result.dynamic_partitions_requests == []
    (run,) = _chain_runs(result)
    assert (run.partition_key, run.tags[REVISION_TAG]) == (target, "2")
    assert run.run_key.startswith(f"{target}@")
    assert is_idle(harness.tick())  # read again in the overlap, not requested again


def test_history_revised_after_switch_on_runs_whatever_its_data_date(fake_cmr, omi, instance):
    """'New' means newly published or revised, never 'recent data' (a reprocessing campaign)."""
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 3)
    harness = SensorHarness(sensor_for(omi), fake_cmr.url, instance)
    assert _chain_runs(harness.tick()) == []
    fake_cmr.revise(harness.added[1].split("_", 1)[1])
    (run,) = _chain_runs(harness.tick())
    assert run.partition_key == harness.added[1]


def test_a_paused_sensor_catches_up_on_everything_published_meanwhile(fake_cmr, omi, instance):
    harness = SensorHarness(sensor_for(omi, auto_run_days=2), fake_cmr.url, instance)
    harness.tick()  # switched on, then paused: no ticks while CMR publishes old data
    published = [_add_omi(fake_cmr, datetime(2010, 3, d, tzinfo=timezone.utc)) for d in (1, 2, 3)]
    result = harness.tick()
    assert _granules_requested(result) == 3
    assert sorted(harness.added) == sorted(partition_of(g) for g in published)


def test_a_revision_that_moves_the_date_moves_the_partition(fake_cmr, omi, instance):
    granule = _add_omi(fake_cmr, datetime(2012, 1, 1, tzinfo=timezone.utc))
    harness = SensorHarness(sensor_for(omi), fake_cmr.url, instance)
    harness.tick()
    old = partition_of(granule)
    moved = fake_cmr.revise(granule.concept_id, begin=datetime(2012, 1, 2, tzinfo=timezone.utc),
                            end=datetime(2012, 1, 2, 23, tzinfo=timezone.utc))
    result = harness.tick()
    assert harness.deleted == [old] and harness.added[-1] == partition_of(moved)
    assert [r.partition_key for r in _chain_runs(result)] == [partition_of(moved)]
    assert list(instance.get_dynamic_partitions("omdoao3e_granules")) == [partition_of(moved)]


def test_a_late_indexed_record_is_picked_up_once(fake_cmr, omi, instance):
    """CMR indexes asynchronously: a record can become searchable after later revision dates
    are already visible, with its own older revision date."""
    harness = SensorHarness(sensor_for(omi), fake_cmr.url, instance)
    harness.tick()
    late = _add_omi(fake_cmr, datetime(2012, 5, 1, tzinfo=timezone.utc), indexed=False)
    early = _add_omi(fake_cmr, datetime(2012, 5, 2, tzinfo=timezone.utc))
    assert late.revision_date < early.revision_date
    assert [r.partition_key for r in _chain_runs(harness.tick())] == [partition_of(early)]
    fake_cmr.index(late.concept_id)
    assert [r.partition_key for r in _chain_runs(harness.tick())] == [partition_of(late)]
    assert is_idle(harness.tick())


def test_mixed_date_forms_are_parsed_never_compared_as_strings():
    dates = ["2024-01-01T10:00:00Z", "2024-01-01T10:00:00.500Z", "2024-01-01T10:00:00+0000", "2024-01-01T09:59:59.999Z"]
    assert sorted(dates) != sorted(dates, key=parse_cmr_time)  # as strings they sort wrongly
    assert [parse_cmr_time(d).isoformat() for d in sorted(dates, key=parse_cmr_time)] == [
        "2024-01-01T09:59:59.999000+00:00", "2024-01-01T10:00:00+00:00", "2024-01-01T10:00:00+00:00",
        "2024-01-01T10:00:00.500000+00:00",
    ]


def test_many_ticks_over_mixed_date_forms_skip_nothing_and_request_nothing_twice(fake_cmr, omi, instance):
    harness = SensorHarness(sensor_for(omi, max_granules_per_tick=7), fake_cmr.url, instance, page_size=3)
    harness.tick()
    granules = [_add_omi(fake_cmr, datetime(2011, 1, 1, tzinfo=timezone.utc) + timedelta(days=n)) for n in range(40)]
    revised = [fake_cmr.revise(g.concept_id) for g in granules[::4]]
    requested: Counter = Counter()
    for _ in range(20):
        result = harness.tick()
        for run in _chain_runs(result):
            requested[run.run_key] += 1
        if is_idle(result):
            break
    assert set(requested.values()) == {1}
    assert len(harness.added) == 40 and sum(requested.values()) >= 1
    requested_tokens = {r for r in requested}
    assert len(requested_tokens) == len(requested)
    forms = {_form(fake_cmr._umm_item(fake_cmr.granule(g.concept_id))["meta"]["revision-date"]) for g in granules}
    assert forms == {"ms Z", "+0000", "Z"} and len(revised) == 10


def _form(date: str) -> str:
    return "+0000" if date.endswith("+0000") else "ms Z" if "." in date else "Z"


def test_cmr_outage_keeps_the_cursor_and_says_when_the_next_attempt_is(fake_cmr, omi, instance, monkeypatch):
    from cog_assets.sources.cmr import client as cmr_module

    monkeypatch.setattr(cmr_module, "wait", lambda seconds: None)
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 30)
    harness = SensorHarness(sensor_for(omi), fake_cmr.url, instance)
    harness.tick()
    before = harness.cursor
    published = [_add_omi(fake_cmr, datetime(2006, 1, d, tzinfo=timezone.utc)) for d in range(1, 6)]
    fake_cmr.fail_search(*[Fault(status=503)] * 5)
    with pytest.raises(CmrError, match=r"cursor is kept so nothing is skipped. The next attempt is the next tick, 3600 s"):
        harness.tick()
    assert harness.cursor == before
    result = harness.tick()  # CMR is back: the 5 new granules arrive and run, nothing skipped
    assert _granules_requested(result) == 5
    assert len(harness.added) == 35 and {partition_of(g) for g in published} <= set(harness.added)


def test_tick_budget_in_seconds_stops_between_pages(fake_cmr, omi, instance):
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 300)
    fake_cmr.fail_search(*[Fault(status=200, delay=0.3)] * 3)
    harness = SensorHarness(sensor_for(omi, max_seconds_per_tick=0.1), fake_cmr.url, instance, page_size=100)
    harness.tick()
    assert len(harness.added) == 100  # stopped after the first (slow) page
    for _ in range(5):
        if is_idle(harness.tick()):
            break
    assert len(harness.added) == 300 and len(set(harness.added)) == 300


def test_partition_keys_are_read_at_most_once_per_tick_and_not_when_idle(fake_cmr, omi, instance, monkeypatch):
    """At 400,000 partitions reading every key costs seconds: once per tick at most (the bench
    caught a version that re-read them per record on a first tick), never on an idle tick."""
    reads: list[str] = []
    original = instance.get_dynamic_partitions
    monkeypatch.setattr(instance, "get_dynamic_partitions", lambda name: reads.append(name) or original(name))
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 500)
    harness = SensorHarness(sensor_for(omi), fake_cmr.url, instance, page_size=100)
    harness.tick()
    assert len(harness.added) == 500 and len(reads) <= 1
    harness.tick()
    reads.clear()
    assert is_idle(harness.tick()) and reads == []
    fake_cmr.delete(harness.added[0].split("_", 1)[1])  # a deletion is checked with one read
    result = harness.tick()
    assert len(reads) == 1 and [r.job_name for r in result.run_requests] == ["omdoao3e_withdraw"]


def test_cursor_of_the_previous_version_is_migrated(omi):
    old = json.dumps({"v": 1, "watermark": "2024-05-01T00:00:00.000Z", "boundary": [], "deleted_since": None})
    cursor = HarvestCursor.from_json(old)
    assert cursor.started == cursor.watermark == datetime(2024, 5, 1, tzinfo=timezone.utc) and cursor.history_done
