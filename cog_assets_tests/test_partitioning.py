"""Datasets partitioned by UTC day (``partitioning: {by: day}``, the GPM IMERG design).

OMI granules stand in for half-hourly ones (fast to convert): three granules a day.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from dagster import AssetKey, SensorResult

from cog_assets.defs.granule_runs import REPROCESS_TAG
from cog_assets.dataset import DatasetConfig, DatasetConfigError, PartitioningConfig, load_dataset

from .cmr_server import FakeCmr
from .granule_files import make_omi_granule
from .helpers import Platform, failure_messages, is_idle

DAY1 = datetime(2012, 1, 1, tzinfo=timezone.utc)
DAY2 = DAY1 + timedelta(days=1)
PER_DAY = 3


@pytest.fixture
def omi_by_day(datasets) -> DatasetConfig:
    omi = datasets["omdoao3e"]
    return omi.model_copy(update={"partitioning": PartitioningConfig(by="day", granules_per_day=PER_DAY)})


def _add_day(cmr: FakeCmr, day: datetime, content: bytes, count: int = PER_DAY, **extra) -> list:
    """``count`` granules starting ``day``, 8 hours each."""
    granules = []
    for i in range(count):
        begin = day + timedelta(hours=8 * i)
        granules.append(cmr.add_granule(
            short_name="OMDOAO3e", version="003", begin=begin, end=begin + timedelta(hours=8, milliseconds=-1),
            file_name=f"OMI-Aura_L3-OMDOAO3e_{day:%Ym%m%d}_part{i}_v003.he5", content=content, **extra,
        ))
    return granules


def _downloads(cmr: FakeCmr) -> list[str]:
    seen: list[str] = []
    cmr.on_download = seen.append
    return seen


def _materialized(platform: Platform) -> set[str]:
    return set(platform.instance.get_materialized_partitions(AssetKey(["omdoao3e", "stac_item"])))


def _manifest(url: str, day: str) -> dict:
    return json.loads((Path(url[len("file://"):]) / "omdoao3e" / "days" / f"{day}.json").read_text())


def test_a_bad_granule_fails_its_day_only_and_the_retry_redoes_only_it(fake_cmr, omi_by_day, instance, local_storage_url):
    content = make_omi_granule().content
    _add_day(fake_cmr, DAY1, content)
    day2 = _add_day(fake_cmr, DAY2, content)
    bad = day2[1]
    fake_cmr.set_file(bad, content[:-1] + bytes([content[-1] ^ 0xFF]))  # checksum mismatch
    platform = Platform(omi_by_day, fake_cmr, local_storage_url, instance)
    downloads = _downloads(fake_cmr)

    result = platform.run_range("2012-01-01", "2012-01-02")

    assert not result.success
    message = "\n".join(failure_messages(result))
    assert "1 of 2 days failed" in message
    assert f"granule {bad.concept_id} ({bad.file_name}): " in message and "checksum mismatch" in message
    assert _materialized(platform) == {"2012-01-01"}
    assert len(downloads) == 6
    day2_manifest = _manifest(local_storage_url, "2012-01-02")  # exactly the live granules
    assert [g["status"] for g in day2_manifest["granules"]] == ["processed", "processed"]
    assert [g["concept_id"] for g in day2_manifest["failed"]] == [bad.concept_id]
    assert "checksum mismatch" in day2_manifest["failed"][0]["error"]
    assert day2_manifest["granules_in_cmr"] == day2_manifest["granules_expected"] == 3

    fake_cmr.set_file(bad, content)  # the fault is removed
    downloads.clear()
    result = platform.run("2012-01-02")

    assert result.success, failure_messages(result)
    assert _materialized(platform) == {"2012-01-01", "2012-01-02"}
    assert [path.rsplit("/", 1)[-1] for path in downloads] == [bad.file_name]  # the two good ones skipped
    metadata = platform.metadata("2012-01-02")
    assert (metadata["granules"], metadata["granules_processed"], metadata["granules_already_current"]) == (3, 1, 2)
    assert metadata["uri"] == (Path(local_storage_url[len("file://"):]) / "omdoao3e/days/2012-01-02.json").as_uri()
    assert len(metadata["sha256"]) == 64 and metadata["size_bytes"] > 0
    statuses = [g["status"] for g in _manifest(local_storage_url, "2012-01-02")["granules"]]
    assert statuses == ["current", "processed", "current"]


def test_reprocess_tag_and_partial_selection_redo_current_granules(fake_cmr, omi_by_day, instance, local_storage_url):
    _add_day(fake_cmr, DAY1, make_omi_granule().content)
    platform = Platform(omi_by_day, fake_cmr, local_storage_url, instance)
    downloads = _downloads(fake_cmr)
    assert platform.run("2012-01-01").success
    assert platform.run("2012-01-01").success
    assert len(downloads) == 3  # the second run found all three current
    assert platform.metadata("2012-01-01")["granules_already_current"] == 3

    assert platform.run("2012-01-01", tags={REPROCESS_TAG: "true"}).success
    assert len(downloads) == 6
    assert platform.metadata("2012-01-01")["granules_processed"] == 3

    cog_only = [AssetKey(["omdoao3e", "cog"])]
    assert platform.run("2012-01-01", selection=cog_only).success
    assert len(downloads) == 6  # the stored granules are converted again, nothing downloaded
    assert platform.metadata("2012-01-01", "cog")["granules_processed"] == 3


def test_a_day_cmr_does_not_list_fails_naming_the_day(fake_cmr, omi_by_day, instance, local_storage_url):
    platform = Platform(omi_by_day, fake_cmr, local_storage_url, instance)
    result = platform.run("2012-03-04")
    assert not result.success
    assert "day 2012-03-04: CMR lists no OMDOAO3e v003 (GES_DISC) granule beginning that day" in "\n".join(
        failure_messages(result)
    )
    assert not (Path(local_storage_url[len("file://"):]) / "omdoao3e" / "days").exists()


def test_sensor_requests_day_runs_and_registers_nothing(fake_cmr, omi_by_day, instance, local_storage_url):
    content = make_omi_granule().content
    published = datetime.now(timezone.utc) - timedelta(days=2)  # before the sensor is switched on
    old = _add_day(fake_cmr, DAY1, content, revision_date=published)
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    _add_day(fake_cmr, today - timedelta(days=1), content, revision_date=published)
    _add_day(fake_cmr, today, content, count=1, revision_date=published)
    platform = Platform(omi_by_day, fake_cmr, local_storage_url, instance)

    first = platform.tick()
    assert isinstance(first, SensorResult) and not first.dynamic_partitions_requests
    recent = [f"{today - timedelta(days=1):%Y-%m-%d}", f"{today:%Y-%m-%d}"]
    assert [r.job_name for r in first.run_requests] == ["omdoao3e_collection_job", "omdoao3e_granule_job"]
    ranged = first.run_requests[1].tags  # the recent window, both days in one ranged run
    assert (ranged["dagster/asset_partition_range_start"], ranged["dagster/asset_partition_range_end"]) == tuple(recent)
    assert is_idle(platform.tick())

    # an old day follows CMR: a granule revised after the sensor was switched on re-runs its day
    assert platform.run("2012-01-01").success
    fake_cmr.revise(old[2].concept_id, content=content)
    revised = platform.tick()
    assert [r.partition_key for r in revised.run_requests if r.job_name == "omdoao3e_granule_job"] == ["2012-01-01"]
    assert all(outcome.success for outcome in platform.execute(revised))
    assert platform.metadata("2012-01-01")["granules_processed"] == 1

    # a CMR deletion is withdrawn by a run: objects gone, manifest updated, no partition deleted
    fake_cmr.delete(old[0].concept_id)
    deleted = platform.tick()
    assert not deleted.dynamic_partitions_requests
    assert [r.job_name for r in deleted.run_requests] == ["omdoao3e_withdraw"]  # the collection exists now
    assert all(outcome.success for outcome in platform.execute(deleted))
    root = Path(local_storage_url[len("file://"):]) / "omdoao3e"
    assert (root / "deleted" / f"{old[0].concept_id}.json").exists()
    assert not (root / "cogs" / old[0].concept_id).exists() and (root / "cogs" / old[1].concept_id).exists()
    assert [g["concept_id"] for g in _manifest(local_storage_url, "2012-01-01")["granules"]] == [
        old[1].concept_id, old[2].concept_id
    ]
    assert is_idle(platform.tick())


@pytest.mark.parametrize(
    "partitioning, cmr_extra, expected",
    [
        ({"by": "day"}, {}, "by: day needs granules_per_day"),
        ({"by": "granule", "granules_per_day": 4}, {}, "granules_per_day only applies to by: day"),
        ({"by": "day", "granules_per_day": 48}, {"temporal_start": None}, "partitioning by day needs cmr.temporal_start"),
        ({"by": "hour"}, {}, "field 'partitioning.by'"),
    ],
)
def test_partitioning_settings_are_validated(tmp_path, partitioning, cmr_extra, expected):
    import yaml

    source = yaml.safe_load((Path(__file__).parents[1] / "cog_assets/datasets/gpm_3imerghh.yaml").read_text())
    source["partitioning"] = partitioning
    source["cmr"].update(cmr_extra)
    path = tmp_path / "gpm_3imerghh.yaml"
    path.write_text(yaml.safe_dump(source))
    with pytest.raises(DatasetConfigError, match=expected.replace(".", r"\.")):
        load_dataset(path)
