"""A run's granules worked on concurrently (defs.granule_runs): downloads stay within the run's
download slots, failed partitions stay failed when Dagster plans a ranged run with one event
per asset, and each granule is still isolated and materialized once."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from dagster import AssetKey, DagsterEventType, DynamicPartitionsDefinition
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from .granule_files import make_omi_granule
from .helpers import Platform, add_omi_granule, failure_messages

DAY = datetime(2013, 3, 1, tzinfo=timezone.utc)
STEPS = ("granule", "cog", "stac_item")
PARTITIONS = DynamicPartitionsDefinition(name="omdoao3e_granules")


def _granules(cmr, count: int, content: bytes | None = None) -> list:
    content = content or make_omi_granule().content
    return [add_omi_granule(cmr, content, DAY + timedelta(days=n)) for n in range(count)]


def _platform(datasets, cmr, storage_url, instance, granules) -> Platform:
    """The OMI platform with ``granules`` registered as partitions, in order."""
    platform = Platform(datasets["omdoao3e"], cmr, storage_url, instance)
    instance.add_dynamic_partitions(PARTITIONS.name, [platform.key(g.concept_id) for g in granules])
    return platform


class _DownloadMeter:
    """How many downloads the fake CMR serves at once (each held for a simulated latency)."""

    def __init__(self, latency: float = 0.3) -> None:
        self.latency, self.now, self.most = latency, 0, 0
        self._lock = threading.Lock()

    def __call__(self, path: str) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.latency)  # a slow data host, not synchronisation
        with self._lock:
            self.now -= 1


@pytest.mark.parametrize("downloads", [1, 2])
def test_downloads_stay_within_the_runs_download_slots(fake_cmr, datasets, instance, local_storage_url, downloads):
    granules = _granules(fake_cmr, 6)
    meter = _DownloadMeter()
    fake_cmr.on_download = meter
    platform = _platform(datasets, fake_cmr, local_storage_url, instance, granules)
    result = platform.run_range(granules[0].concept_id, granules[-1].concept_id, workers=2, downloads=downloads)
    assert result.success, failure_messages(result)
    assert meter.most == downloads  # 5 granules in flight, yet no more downloads than slots
    assert len(result.get_asset_materialization_events()) == 3 * len(granules)  # once each


def test_failed_partitions_stay_failed_with_one_planned_event_per_asset(fake_cmr, datasets, instance, local_storage_url, monkeypatch):
    """DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS (deploy/) plans a ranged run with one event
    per asset; without the run's own report of its failed partitions, Dagster would show them as
    missing, not failed (its planned events no longer name them)."""
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    good = make_omi_granule().content
    granules = _granules(fake_cmr, 5, good)
    bad = granules[2]
    fake_cmr.set_file(bad, good[:-1] + bytes([good[-1] ^ 1]))
    platform = _platform(datasets, fake_cmr, local_storage_url, instance, granules)
    result = platform.run_range(granules[0].concept_id, granules[-1].concept_id)
    assert not result.success and "1 of 5 granules failed" in failure_messages(result)[0]

    keys = [platform.key(g.concept_id) for g in granules]
    for step in STEPS:
        asset = AssetKey(["omdoao3e", step])
        statuses = instance.get_status_by_partition(asset, keys, PARTITIONS)
        assert statuses == {key: AssetPartitionStatus.FAILED if key == platform.key(bad.concept_id)
                            else AssetPartitionStatus.MATERIALIZED for key in keys}
        planned = [e.dagster_event for e in instance.all_logs(result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)]
        # one for the whole range (the setting took effect), one for the failed partition
        assert sorted(str(e.partition) for e in planned if e.asset_key == asset) == sorted(["None", platform.key(bad.concept_id)])
