from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from dagster import SensorResult

from cog_assets.sources.cmr.client import CmrError
from cog_assets.dataset import DatasetConfig
from cog_assets.defs.sensors import REVISION_TAG

from .cmr_server import Fault
from .helpers import SensorHarness, add_omi_days, is_idle, now_utc, sensor_for


def _sensor(dataset: DatasetConfig, **policy):
    return sensor_for(dataset, **policy)


@pytest.fixture
def omi(datasets):
    return datasets["omdoao3e"]


def test_2500_granules_registered_once_across_ticks(fake_cmr, omi, instance):
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 2500)
    harness = SensorHarness(_sensor(omi, max_granules_per_tick=1000), fake_cmr.url, instance, page_size=500)
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
    assert set(instance.get_dynamic_partitions("omdoao3e_granules")) == set(fake_cmr._granules)
    cursor = json.loads(harness.cursor)
    assert cursor["watermark"] == max(fake_cmr.granule(c).revision_date for c in fake_cmr._granules).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_idle_tick_adds_nothing(fake_cmr, omi, instance):
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 30)
    harness = SensorHarness(_sensor(omi), fake_cmr.url, instance)
    assert isinstance(harness.tick(), SensorResult)
    cursor = harness.cursor
    idle = harness.tick()
    assert is_idle(idle)
    assert harness.cursor == cursor and len(harness.added) == 30
    # the inclusive watermark query did return the boundary granule, and it was dropped
    last = list(fake_cmr.searches())[-1]
    assert any(name == "revision_date[]" for name, _ in last["params"])


def test_boundary_ties_are_not_lost_or_duplicated(fake_cmr, omi, instance):
    same = datetime(2024, 5, 1, tzinfo=timezone.utc)
    first = datetime(2005, 1, 1, tzinfo=timezone.utc)
    for i in range(7):
        fake_cmr.add_granule(short_name="OMDOAO3e", version="003", file_name=f"f{i}.he5", begin=first, end=first, revision_date=same)
    harness = SensorHarness(_sensor(omi), fake_cmr.url, instance)
    harness.tick()
    fake_cmr.add_granule(short_name="OMDOAO3e", version="003", file_name="late.he5", begin=first, end=first, revision_date=same)
    harness.tick()
    assert len(harness.added) == 8 and len(set(harness.added)) == 8


def test_recent_granules_run_and_collection_is_published_first(fake_cmr, omi, instance):
    today = now_utc().replace(hour=0, minute=0, second=0, microsecond=0)
    add_omi_days(fake_cmr, omi, today - timedelta(days=20), 18)  # days 20..3 ago
    harness = SensorHarness(_sensor(omi, auto_run_days=7), fake_cmr.url, instance)
    result = harness.tick()
    partition_runs = [r for r in result.run_requests if r.partition_key]
    assert len(harness.added) == 18
    assert len(partition_runs) == 5  # ending within 7 days: 7,6,5,4,3 days ago
    assert result.run_requests[0].partition_key is None
    assert [k.to_user_string() for k in result.run_requests[0].asset_selection] == ["omdoao3e/stac_collection"]
    assert [k.to_user_string() for k in partition_runs[0].asset_selection] == [
        "omdoao3e/granule", "omdoao3e/cog", "omdoao3e/stac_item"
    ]
    assert partition_runs[0].tags[REVISION_TAG] == "1"


def test_revised_granule_yields_one_run_and_no_partition(fake_cmr, omi, instance):
    today = now_utc().replace(hour=0, minute=0, second=0, microsecond=0)
    add_omi_days(fake_cmr, omi, today - timedelta(days=2), 2)
    harness = SensorHarness(_sensor(omi), fake_cmr.url, instance)
    harness.tick()
    target = harness.added[0]
    fake_cmr.revise(target)
    result = harness.tick()
    assert isinstance(result, SensorResult)
    assert result.dynamic_partitions_requests == []
    assert [(r.partition_key, r.tags[REVISION_TAG], r.run_key) for r in result.run_requests if r.partition_key] == [
        (target, "2", f"{target}@2")
    ]
    assert len(instance.get_dynamic_partitions("omdoao3e_granules")) == 2


def test_revision_of_unprocessed_history_only_updates_the_cursor(fake_cmr, omi, instance):
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 3)
    harness = SensorHarness(_sensor(omi), fake_cmr.url, instance)
    harness.tick()
    fake_cmr.revise(harness.added[1])
    result = harness.tick()
    assert result.run_requests == [] and result.dynamic_partitions_requests == []


def test_cmr_outage_leaves_cursor_unchanged(fake_cmr, omi, instance, monkeypatch):
    from cog_assets.sources.cmr import client as cmr_module

    monkeypatch.setattr(cmr_module, "wait", lambda seconds: None)
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 30)
    harness = SensorHarness(_sensor(omi), fake_cmr.url, instance)
    harness.tick()
    before = harness.cursor
    add_omi_days(fake_cmr, omi, datetime(2006, 1, 1, tzinfo=timezone.utc), 5)
    fake_cmr.fail_search(*[Fault(status=503)] * 5)
    with pytest.raises(CmrError, match=r"cursor kept at .* nothing is skipped.*HTTP 503"):
        harness.tick()
    assert harness.cursor == before
    harness.tick()  # CMR is back: the 5 new granules arrive, nothing skipped
    assert len(harness.added) == 35 and len(set(harness.added)) == 35


def test_tick_budget_in_seconds_stops_between_pages(fake_cmr, omi, instance):
    add_omi_days(fake_cmr, omi, datetime(2005, 1, 1, tzinfo=timezone.utc), 300)
    fake_cmr.fail_search(*[Fault(status=200, delay=0.3)] * 3)
    harness = SensorHarness(_sensor(omi, max_seconds_per_tick=0.1), fake_cmr.url, instance, page_size=100)
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
    harness = SensorHarness(_sensor(omi), fake_cmr.url, instance, page_size=100)
    harness.tick()
    assert len(harness.added) == 500 and len(reads) <= 1
    reads.clear()
    assert is_idle(harness.tick()) and reads == []
    fake_cmr.delete(harness.added[0])  # a deletion is checked without reading every key
    harness.tick()
    assert harness.deleted == [harness.added[0]] and reads == []
