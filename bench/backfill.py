"""Backfill benchmark: N OMDOAO3e granules end to end, Dagster vs a bare loop, same concurrency.

Both sides run on loopback against the test CMR server (downloads with a bearer token) and
SeaweedFS (S3), with the same project function (``chain.process``) per granule:

* bare: ``concurrency`` worker processes, each taking an equal share of the granules;
* Dagster: ``dagster dev`` (webserver + daemon, SQLite instance, run queue limited to
  ``concurrency`` runs); the backfill is launched through the webserver's GraphQL
  ``launchPartitionBackfill`` mutation, as the UI's "Materialize partitions" dialog does, and
  timed until the backfill completes.

Target: Dagster wall time <= 1.3x the bare loop. Prints a table.

    python bench/backfill.py [--granules 200] [--concurrency 2]   (runs of backfill.granules_per_run)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test servers live in cog_assets_tests

from cog_assets.processing import chain  # noqa: E402
from cog_assets.dataset import load_datasets  # noqa: E402
from cog_assets.defs.resources import resources_from_env  # noqa: E402
from cog_assets_tests.cmr_server import FakeCmr  # noqa: E402
from cog_assets_tests.granule_files import make_omi_granule  # noqa: E402
from cog_assets_tests.helpers import omi_file_name  # noqa: E402
from cog_assets_tests.dagster_dev import DagsterDev, wait_for_backfill  # noqa: E402
from cog_assets_tests.services import start_seaweedfs  # noqa: E402

FIRST_DAY = datetime(2010, 1, 1, tzinfo=timezone.utc)


def _bare_worker(concept_ids: list[str]) -> int:
    """One worker of the bare loop: the same resources and per-granule function, no Dagster."""
    resources = resources_from_env()
    # outside Dagster nothing resolves EnvVar, so the token is passed as its value here
    earthdata = resources["earthdata"].model_copy(update={"token": os.environ["EARTHDATA_TOKEN"]})
    dataset = {d.id: d for d in load_datasets()}["omdoao3e"]
    services = chain.Services(dataset, resources["cmr"], earthdata, resources["archive"], resources["stac_api"])
    found = services.cmr.granules(dataset.cmr, concept_ids)
    scratch = Path(tempfile.mkdtemp())
    failed = 0
    for concept_id in concept_ids:
        outcome = chain.process(services, concept_id, found.get(concept_id), set(chain.STEPS), scratch)
        if outcome.error:
            print(outcome.error, file=sys.stderr)
            failed += 1
    shutil.rmtree(scratch, ignore_errors=True)
    return failed


def run_bare(concept_ids: list[str], concurrency: int) -> float:
    shares = [concept_ids[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    with ProcessPoolExecutor(concurrency) as pool:
        failed = sum(pool.map(_bare_worker, shares))
    assert failed == 0, f"{failed} granules failed in the bare loop"
    return time.perf_counter() - started


@dataclass
class DagsterTimes:
    first_run_started: float  # launch → the first run's process started (daemon pickup + launch)
    all_materialized: float  # launch → the last run finished: every partition materialized
    backfill_completed: float  # launch → the backfill daemon marked the backfill complete
    runs: int
    in_run_seconds: float  # summed run durations (start → end)


def run_dagster(concept_ids: list[str], concurrency: int, env: dict[str, str], home: Path) -> DagsterTimes:
    from dagster import DagsterInstance
    from dagster._core.execution.backfill import BulkActionStatus

    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    config["concurrency"]["runs"]["max_concurrent_runs"] = concurrency
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    dev = DagsterDev(home, env)
    try:
        os.environ["DAGSTER_HOME"] = str(home)
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("omdoao3e_granules", concept_ids)
            launched_at = time.time()
            backfill_id = dev.launch_backfill(concept_ids, [["omdoao3e", step] for step in chain.STEPS])
            backfill = wait_for_backfill(instance, backfill_id, timeout=3600)
            elapsed = time.time() - launched_at
            assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, backfill.status
            stats = [instance.get_run_stats(run_id) for run_id in instance.get_run_ids()]
            return DagsterTimes(
                first_run_started=min(st.start_time for st in stats) - launched_at,
                all_materialized=max(st.end_time for st in stats) - launched_at,
                backfill_completed=elapsed,
                runs=len(stats),
                in_run_seconds=sum(st.end_time - st.start_time for st in stats),
            )
    finally:
        dev.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--granules", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    dataset = {d.id: d for d in load_datasets()}["omdoao3e"]
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    content = make_omi_granule().content
    s3 = start_seaweedfs(work / "weed")
    try:
        with FakeCmr() as cmr:
            granules = [
                cmr.add_granule(
                    short_name="OMDOAO3e", version="003", file_name=omi_file_name(FIRST_DAY + timedelta(days=n)),
                    begin=FIRST_DAY + timedelta(days=n), end=FIRST_DAY + timedelta(days=n, hours=23), content=content,
                )
                for n in range(args.granules)
            ]
            concept_ids = [g.concept_id for g in granules]
            base_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))},
                **s3.env(),
                "COG_ASSETS_CMR_URL": cmr.url,
                "EARTHDATA_TOKEN": cmr.token or "",
                "COG_ASSETS_INSECURE_TESTING_ORIGINS": "http://127.0.0.1",
                "PYTHONPATH": str(ROOT),
            }
            os.environ.update({**base_env, "COG_ASSETS_STORAGE": f"s3://{s3.bucket}/bare"})
            bare = run_bare(concept_ids, args.concurrency)
            home = work / "dagster_home"
            home.mkdir()
            dagster_env = {**base_env, "COG_ASSETS_STORAGE": f"s3://{s3.bucket}/dagster", "DAGSTER_HOME": str(home)}
            times = run_dagster(concept_ids, args.concurrency, dagster_env, home)
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    n, per_run = args.granules, dataset.backfill.granules_per_run
    rows = [
        ("bare loop (chain.process), wall", bare, 1.0),
        ("Dagster: launch → all materialized", times.all_materialized, times.all_materialized / bare),
        ("Dagster: launch → backfill complete", times.backfill_completed, times.backfill_completed / bare),
        ("  of which: launch → first run started", times.first_run_started, None),
        ("  in-run time / bare worker time", times.in_run_seconds, times.in_run_seconds / (bare * args.concurrency)),
    ]
    print(f"\nbackfill of {n} OMDOAO3e granules, concurrency {args.concurrency}, "
          f"{per_run} granules per run ({times.runs} runs)")
    print(f"{'':<42}{'seconds':>9}{'ratio':>8}")
    for label, seconds, ratio in rows:
        print(f"{label:<42}{seconds:>9.1f}{'' if ratio is None else f'{ratio:.2f}':>8}")
    print("target: Dagster / bare <= 1.30")


if __name__ == "__main__":
    main()
