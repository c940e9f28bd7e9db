"""Real backfills on the production instance profile (deploy/): PostgreSQL storage behind
PgBouncer (deploy/pgbouncer.ini), S3 compute logs, one planned event per asset per ranged run,
launched through GraphQL like the UI, run by the daemon in ranged runs. One bad granule must not
fail its neighbours, and the failed ones are shown failed and can be retried alone; for a dataset
partitioned by day, a bad granule fails its day only."""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, DailyPartitionsDefinition, DynamicPartitionsDefinition
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from .dagster_dev import DagsterDev, wait_for_backfill, wait_for_run
from .granule_files import imerg_values, make_imerg_granule, make_omi_granule
from .helpers import imerg_file_name, omi_file_name, partition_of

REPO = Path(__file__).resolve().parents[1]
DAY = datetime(2011, 1, 1, tzinfo=timezone.utc)
STEPS = ("granule", "cog", "stac_item")
pytestmark = pytest.mark.slow


def _production_home(home: Path, seaweedfs) -> None:
    """deploy/dagster.yaml as shipped, except what needs AWS itself: ECS becomes the default
    run launcher and S3 compute logs point at SeaweedFS."""
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_launcher"]["class"] == "EcsRunLauncher"
    del config["run_launcher"]
    config["compute_logs"]["config"].update(endpoint_url=seaweedfs.endpoint, use_ssl=False, region="us-east-1")
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def _datasets_with(tmp_path: Path, dataset: str, **backfill) -> Path:
    """The shipped dataset files, with ``dataset``'s backfill settings replaced."""
    folder = tmp_path / "datasets"
    folder.mkdir()
    for source in (REPO / "cog_assets" / "datasets").glob("*.yaml"):
        config = yaml.safe_load(source.read_text())
        if config["id"] == dataset:
            config["backfill"] = {**config.get("backfill", {}), **backfill}
        (folder / source.name).write_text(yaml.safe_dump(config))
    return folder


def _production(tmp_path, fake_cmr, postgres, pgbouncer, seaweedfs, monkeypatch) -> tuple[Path, dict[str, str]]:
    """A fresh database (reached through PgBouncer) and storage prefix; the environment a
    deployment would set (deploy/dagster.yaml's header)."""
    database = f"dagster_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    prefix = f"backfill-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))},
        **seaweedfs.env(),
        "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(pgbouncer.port), "DAGSTER_PG_DB": database,
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "DAGSTER_PG_USERNAME": "postgres", "DAGSTER_PG_PASSWORD": "unused-trust-auth",
        "DAGSTER_COMPUTE_LOGS_BUCKET": seaweedfs.bucket,
        "COG_ASSETS_CMR_URL": fake_cmr.url, "EARTHDATA_TOKEN": fake_cmr.token,
        "COG_ASSETS_INSECURE_TESTING_ORIGINS": "http://127.0.0.1", "COG_ASSETS_STORAGE": f"s3://{seaweedfs.bucket}/{prefix}",
        "PYTHONPATH": str(REPO),
    }
    home = tmp_path / "home"
    _production_home(home, seaweedfs)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home, env


def test_backfill_isolates_bad_granules_on_postgres(tmp_path, fake_cmr, postgres, pgbouncer, seaweedfs, monkeypatch):
    home, env = _production(tmp_path, fake_cmr, postgres, pgbouncer, seaweedfs, monkeypatch)
    good = make_omi_granule()
    granules = [
        fake_cmr.add_granule(
            short_name="OMDOAO3e", version="003", file_name=omi_file_name(DAY + timedelta(days=n)),
            begin=DAY + timedelta(days=n), end=DAY + timedelta(days=n, hours=23), content=good.content,
        )
        for n in range(20)
    ]
    flipped, truncated = granules[4], granules[13]
    fake_cmr.set_file(flipped, good.content[:-1] + bytes([good.content[-1] ^ 1]))
    fake_cmr.set_file(truncated, good.content[:-1000])
    keys = [partition_of(g) for g in granules]
    partitions = DynamicPartitionsDefinition(name="omdoao3e_granules")
    paths = [["omdoao3e", step] for step in STEPS]

    dev = DagsterDev(home, env)
    try:
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            instance.add_dynamic_partitions("omdoao3e_granules", keys)
            # launched as the UI does from the stac_item page: the granules are not staged yet,
            # so each run also stages and converts them, and all three assets materialize
            first = wait_for_backfill(instance, dev.launch_backfill(keys, [["omdoao3e", "stac_item"]]))
            for step in ("granule", "cog"):
                statuses = instance.get_status_by_partition(AssetKey(["omdoao3e", step]), keys, partitions)
                assert sum(s == AssetPartitionStatus.MATERIALIZED for s in statuses.values()) == 18
            statuses = instance.get_status_by_partition(AssetKey(["omdoao3e", "stac_item"]), keys, partitions)
            failed = sorted(k for k, s in statuses.items() if s == AssetPartitionStatus.FAILED)
            materialized = [k for k, s in statuses.items() if s == AssetPartitionStatus.MATERIALIZED]
            assert failed == sorted([partition_of(flipped), partition_of(truncated)]) and len(materialized) == 18
            runs = [r for r in instance.get_run_records() if r.dagster_run.job_name != "omdoao3e_collection_job"]
            assert len(runs) == 1  # 20 granules in one ranged run 
            planned = [e.dagster_event for e in instance.all_logs(runs[0].dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)]
            # one planned event per asset for the range, then one per asset for each failed granule
            assert sorted(str(e.partition) for e in planned if e.asset_key.path[-1] == "stac_item") == sorted(["None", *failed])
            failure = next(
                e for e in instance.all_logs(runs[0].dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE)
            ).dagster_event.step_failure_data.error.message
            assert "2 of 20 granules failed" in failure
            assert re.search(rf"granule {flipped.concept_id} .*md5 checksum mismatch", failure)
            assert re.search(rf"granule {truncated.concept_id} .*but CMR declares \d+ \(truncated", failure)
            assert first.status.value in ("COMPLETED_FAILED", "FAILED", "COMPLETED")

            # the faults are fixed at the source; the failed partitions alone are retried
            fake_cmr.set_file(flipped, good.content)
            fake_cmr.set_file(truncated, good.content)
            retry = wait_for_backfill(instance, dev.launch_backfill(failed, paths))
            assert retry.status.value == "COMPLETED_SUCCESS"
            for step in STEPS:
                statuses = instance.get_status_by_partition(AssetKey(["omdoao3e", step]), keys, partitions)
                assert set(statuses.values()) == {AssetPartitionStatus.MATERIALIZED}
            retried_runs = [r for r in instance.get_run_records() if r.dagster_run.run_id != runs[0].dagster_run.run_id
                            and r.dagster_run.job_name != "omdoao3e_collection_job"]  # the catalog sensor's writer
            retried_keys = sorted(
                e.dagster_event.partition
                for r in retried_runs
                for e in instance.all_logs(r.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
                if e.dagster_event.asset_key == AssetKey(["omdoao3e", "stac_item"])
            )
            assert retried_keys == failed  # the 18 good ones were not redone
            logs = seaweedfs.client().list_objects_v2(Bucket=seaweedfs.bucket, Prefix="dagster/compute-logs")
            assert logs.get("KeyCount", 0) > 0  # step logs went to S3, as in production
    finally:
        dev.stop()


def test_backfill_of_days_isolates_bad_granules_on_postgres(tmp_path, fake_cmr, postgres, pgbouncer, seaweedfs, monkeypatch):
    """GPM IMERG is partitioned by day: a UI backfill of 3 days runs whole days per run (2 with
    96 granules per run); a bad granule fails its day only, and retrying that day downloads only
    the bad granule."""
    home, env = _production(tmp_path, fake_cmr, postgres, pgbouncer, seaweedfs, monkeypatch)
    env["COG_ASSETS_DATASETS"] = str(_datasets_with(tmp_path, "gpm_3imerghh", granules_per_run=96))
    good = make_imerg_granule(imerg_values(n_lon=360, n_lat=180))  # a 1° grid: quick to convert
    first = datetime(2020, 5, 1, tzinfo=timezone.utc)
    granules = []
    for day in range(3):
        for slot in range(2):
            begin = first + timedelta(days=day, minutes=30 * slot)
            granules.append(fake_cmr.add_granule(
                short_name="GPM_3IMERGHH", version="07", file_name=imerg_file_name(begin), begin=begin,
                end=begin + timedelta(minutes=30, milliseconds=-1), content=good.content,
            ))
    bad = granules[3]  # the second granule of the second day
    fake_cmr.set_file(bad, good.content[:-1] + bytes([good.content[-1] ^ 1]))
    days = ["2020-05-01", "2020-05-02", "2020-05-03"]
    paths = [["gpm_3imerghh", step] for step in STEPS]
    downloads: list[str] = []
    fake_cmr.on_download = downloads.append

    dev = DagsterDev(home, env)
    try:
        with DagsterInstance.get() as instance:
            wait_for_backfill(instance, dev.launch_backfill(days, paths))
            partitions = DailyPartitionsDefinition(start_date="1998-01-01", end_offset=1)
            statuses = instance.get_status_by_partition(AssetKey(["gpm_3imerghh", "stac_item"]), days, partitions)
            assert statuses == {
                "2020-05-01": AssetPartitionStatus.MATERIALIZED,
                "2020-05-02": AssetPartitionStatus.FAILED,
                "2020-05-03": AssetPartitionStatus.MATERIALIZED,
            }
            runs = [r for r in instance.get_run_records() if r.dagster_run.job_name != "gpm_3imerghh_collection_job"]
            ranges = sorted(
                (r.dagster_run.tags["dagster/asset_partition_range_start"], r.dagster_run.tags["dagster/asset_partition_range_end"])
                for r in runs
            )
            assert ranges == [("2020-05-01", "2020-05-02"), ("2020-05-03", "2020-05-03")]  # 2 days per run
            failure = next(
                e
                for r in runs
                for e in instance.all_logs(r.dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE)
            ).dagster_event.step_failure_data.error.message
            assert "1 of 2 days failed" in failure
            assert re.search(rf"granule {bad.concept_id} \({re.escape(bad.file_name)}\): .*md5 checksum mismatch", failure)
            assert len(downloads) == 6

            fake_cmr.set_file(bad, good.content)
            downloads.clear()
            retry = wait_for_backfill(instance, dev.launch_backfill(["2020-05-02"], paths))
            assert retry.status.value == "COMPLETED_SUCCESS"
            statuses = instance.get_status_by_partition(AssetKey(["gpm_3imerghh", "stac_item"]), days, partitions)
            assert set(statuses.values()) == {AssetPartitionStatus.MATERIALIZED}
            assert [path.rsplit("/", 1)[-1] for path in downloads] == [bad.file_name]  # its good neighbour skipped
    finally:
        dev.stop()


def test_a_range_launched_as_one_run_needs_no_backfill_loop(tmp_path, fake_cmr, postgres, pgbouncer, seaweedfs, monkeypatch):
    """The Launchpad's way to a range now (README, "Backfills"): the granule job with Dagster's
    range tags is one run, queued at once; every partition of the range materializes, and
    nothing waits for the backfill daemon's loop (there is no backfill)."""
    home, env = _production(tmp_path, fake_cmr, postgres, pgbouncer, seaweedfs, monkeypatch)
    content = make_omi_granule().content
    granules = [
        fake_cmr.add_granule(
            short_name="OMDOAO3e", version="003", file_name=omi_file_name(DAY + timedelta(days=n)),
            begin=DAY + timedelta(days=n), end=DAY + timedelta(days=n, hours=23), content=content,
        )
        for n in range(6)
    ]
    keys = [partition_of(g) for g in granules]
    dev = DagsterDev(home, env)
    try:
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("omdoao3e_granules", keys)
            run_id = dev.launch_ranged_run("omdoao3e_granule_job", keys[0], keys[-1], [["omdoao3e", s] for s in STEPS])
            run = wait_for_run(instance, run_id)
            assert run.status.value == "SUCCESS" and instance.get_backfills() == []
            for step in STEPS:
                assert set(instance.get_materialized_partitions(AssetKey(["omdoao3e", step]))) == set(keys)
    finally:
        dev.stop()
