"""The S3 sensor's decisions, tick by tick, against a prefix on SeaweedFS (no runs executed).

Runs, storage and the STAC API after these decisions are in test_s3_end_to_end.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from dagster import DagsterInstance, SensorResult

from cog_assets.defs.discovery import GRANULES_TAG, REVISION_TAG
from cog_assets.sources.s3.bucket import SourceError
from cog_assets.sources.s3.discover import ListingCursor

from .helpers import SensorHarness, is_idle, sensor_for
from .veda_files import after_second_of, no2_name, put

BODY = b"not read by the sensor"


@pytest.fixture
def bucket(seaweedfs):
    """A fresh source prefix in the test bucket: (client, bucket, prefix)."""
    return seaweedfs.client(), seaweedfs.bucket, f"src-{uuid.uuid4().hex[:10]}/"


def _dataset(datasets, bucket, **source):
    client, name, prefix = bucket
    no2 = datasets["no2_monthly"]
    return no2.model_copy(update={"source": no2.source.model_copy(update={"url": f"s3://{name}/{prefix}", **source})})


def _harness(dataset, seaweedfs, instance: DagsterInstance, **policy) -> SensorHarness:
    """The dataset's S3 sensor, as if switched on two minutes from now: what is in the bucket
    already is history (objects from the last minute before the switch-on would run, as for CMR)."""
    harness = SensorHarness(sensor_for(dataset, **policy), "", instance, s3=seaweedfs)
    harness.cursor = ListingCursor(started=datetime.now(timezone.utc) + timedelta(minutes=2)).to_json()
    return harness


def _months(n: int, first_year: int = 2019) -> list[tuple[int, int]]:
    return [(first_year + m // 12, m % 12 + 1) for m in range(n)]


def _chain_runs(result) -> list:
    return [r for r in (result.run_requests or []) if r.job_name == "no2_monthly_granule_job"]


def _message(result) -> str:
    return result.skip_reason.skip_message if isinstance(result, SensorResult) and result.skip_reason else ""


def test_a_pass_lists_the_prefix_across_ticks_within_the_budget(datasets, bucket, seaweedfs, instance):
    client, name, prefix = bucket
    for year, month in _months(23):
        put(client, name, prefix + no2_name(year, month), BODY)
    for other in ("README.txt", no2_name(2019, 1) + ".aux.xml", "catalog.json"):
        put(client, name, prefix + other, b"{}")
    put(client, name, prefix + "old/" + no2_name(2001, 1), BODY)  # a sub-folder is not listed
    harness = _harness(_dataset(datasets, bucket), seaweedfs, instance, max_granules_per_tick=5)
    added_per_tick, ticks = [], 0
    while ticks < 20:
        result = harness.tick()
        ticks += 1
        added_per_tick.append(sum(len(r.partition_keys) for r in result.dynamic_partitions_requests or []))
        assert _chain_runs(result) == []  # objects there before the switch-on are history (backfills)
        if not ListingCursor.from_json(harness.cursor).in_pass:
            break
    assert ticks >= 6 and max(added_per_tick) <= 5  # 26 objects at 5 a tick: the pass spans ticks
    registered = list(instance.get_dynamic_partitions("no2_monthly_granules"))
    assert len(registered) == len(set(registered)) == 23 and registered == sorted(registered)
    assert registered[0] == "2019-01-01_OMI_trno2_0.10x0.10_201901_Col3_V4.nc"
    counts = ListingCursor.from_json(harness.cursor).counts
    assert counts == {"listed": 26, "matching": 23, "not_matching": 3, "refused": 0, "sub_folders": 1}
    idle = harness.tick()  # between passes: only the names after the last one seen
    assert is_idle(idle) and "tail: listed 0 objects in 1 pages" in _message(idle)


def test_non_matching_objects_are_counted_and_shown_in_the_tick(datasets, bucket, seaweedfs, instance):
    client, name, prefix = bucket
    put(client, name, prefix + no2_name(2020, 1), BODY)
    for other in ("README.txt", "thumbnail.png"):
        put(client, name, prefix + other, b"x")
    result = _harness(_dataset(datasets, bucket), seaweedfs, instance).tick()
    assert isinstance(result, SensorResult) and len(result.dynamic_partitions_requests[0].partition_keys) == 1
    harness = _harness(_dataset(datasets, bucket), seaweedfs, DagsterInstance.ephemeral(), relist_minutes=0)
    harness.instance.add_dynamic_partitions("no2_monthly_granules", ["2020-01-01_OMI_trno2_0.10x0.10_202001_Col3_V4.nc"])
    message = _message(harness.tick())
    assert "listed 3 objects in 1 pages; 1 match the pattern, 2 do not (e.g. README.txt, thumbnail.png), 0 refused" in message


def test_new_objects_after_the_switch_on_run_and_are_found_by_the_next_tick(datasets, bucket, seaweedfs, instance):
    client, name, prefix = bucket
    put(client, name, prefix + no2_name(2020, 1), BODY)
    harness = _harness(_dataset(datasets, bucket), seaweedfs, instance)
    assert _chain_runs(harness.tick()) == []  # switched on: January is history
    put(client, name, prefix + no2_name(2020, 2), BODY)
    result = harness.tick()
    assert result.run_requests[0].job_name == "no2_monthly_collection_job"  # the collection first
    (run,) = _chain_runs(result)
    assert run.partition_key == "2020-02-01_OMI_trno2_0.10x0.10_202002_Col3_V4.nc" and run.tags[GRANULES_TAG] == "1"
    assert harness.added[-1] == run.partition_key
    assert is_idle(harness.tick())  # requested once


def test_an_object_overwritten_in_place_is_a_revision(datasets, bucket, seaweedfs, instance):
    client, name, prefix = bucket
    first = put(client, name, prefix + no2_name(2020, 3), BODY)
    harness = _harness(_dataset(datasets, bucket), seaweedfs, instance, relist_minutes=0)
    harness.tick()
    key = harness.added[0]
    after_second_of(first)
    second = put(client, name, prefix + no2_name(2020, 3), BODY + b" revised")
    result = harness.tick()
    (run,) = _chain_runs(result)
    assert run.partition_key == key and run.tags[REVISION_TAG] == str(int(second.timestamp())) > str(int(first.timestamp()))
    assert not result.dynamic_partitions_requests  # the same partition
    assert _chain_runs(harness.tick()) == []  # the next pass reads it again: reported once


def test_a_deleted_object_is_withdrawn(datasets, bucket, seaweedfs, instance):
    client, name, prefix = bucket
    for year, month in _months(3, 2020):
        put(client, name, prefix + no2_name(year, month), BODY)
    harness = _harness(_dataset(datasets, bucket), seaweedfs, instance, relist_minutes=0, max_granules_per_tick=1)
    while harness.tick() and ListingCursor.from_json(harness.cursor).in_pass:
        pass
    client.delete_object(Bucket=name, Key=prefix + no2_name(2020, 2))
    withdrawals = []
    for _ in range(4):  # a pass of one object a tick: the deletion is found where the pass covers it
        result = harness.tick()
        withdrawals += [r for r in result.run_requests or [] if r.job_name == "no2_monthly_withdraw"]
        if not ListingCursor.from_json(harness.cursor).in_pass:
            break
    (withdraw,) = withdrawals
    (granule,) = withdraw.run_config["ops"]["no2_monthly_withdraw_granules"]["config"]["granules"]
    stem = no2_name(2020, 2)[: -len(".tif")]
    assert (granule["concept_id"], granule["partition_key"]) == (stem, f"2020-02-01_{stem}")


def test_names_that_cannot_be_granules_are_refused_with_the_reason(datasets, bucket, seaweedfs, instance, capfd):
    client, name, prefix = bucket
    pattern = r"_(?P<year>\d{4})(?P<month>\d{2})\.(nc|tif)$"
    for key in ("a_202001.nc", "a_202001.tif", "b_202013.tif", "c d_202001.tif", "e_202002.tif"):
        put(client, name, prefix + key, BODY)
    harness = _harness(_dataset(datasets, bucket, pattern=pattern), seaweedfs, instance)
    harness.tick()
    assert sorted(harness.added) == ["2020-01-01_a_202001", "2020-02-01_e_202002"]
    warnings = capfd.readouterr().err  # the tick's log
    assert "listed 5 objects in 1 pages; 5 match the pattern, 0 do not, 3 refused" in warnings
    assert "a_202001.tif: a_202001.nc has the same stem 'a_202001'" in warnings
    assert "b_202013.tif: its name matches the pattern but b_202013.tif: month must be in 1..12" in warnings
    assert "c d_202001.tif: not a plain file name" in warnings


def test_a_listing_failure_keeps_the_cursor_and_says_what_to_check(datasets, seaweedfs, instance):
    no2 = datasets["no2_monthly"]
    missing = no2.model_copy(update={"source": no2.source.model_copy(update={"url": "s3://no-such-bucket-here/x/"})})
    harness = _harness(missing, seaweedfs, instance)
    before = harness.cursor
    with pytest.raises(SourceError, match="listing failed; the cursor is kept.*Check that the bucket exists"):
        harness.tick()
    assert harness.cursor == before
