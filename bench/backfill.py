"""Backfill benchmark: N OMDOAO3e granules end to end, Dagster vs a bare loop, same concurrency.

Both sides run on loopback against the test CMR server (downloads with a bearer token) and
SeaweedFS (S3), with the same project function (``chain.process``) per granule:

* bare: ``concurrency`` worker processes, each taking an equal share of the granules;
* Dagster: ``dagster dev`` (webserver + daemon, SQLite instance, run queue limited to
  ``concurrency`` runs); the backfill is launched through the webserver's GraphQL
  ``launchPartitionBackfill`` mutation, as the UI's "Materialize partitions" dialog does, and
  timed until the backfill completes.

Target: Dagster wall time <= 1.3x the bare loop. Prints a table.

    python bench/backfill.py [--granules 200] [--concurrency 2] [--per-run 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test servers live in cog_assets_tests

from cog_assets import chain  # noqa: E402
from cog_assets.dataset import load_datasets  # noqa: E402
from cog_assets.definitions import resources_from_env  # noqa: E402
from cog_assets_tests.cmr_server import FakeCmr  # noqa: E402
from cog_assets_tests.granule_files import make_omi_granule  # noqa: E402
from cog_assets_tests.helpers import omi_file_name  # noqa: E402
from cog_assets_tests.services import free_port, start_seaweedfs  # noqa: E402

FIRST_DAY = datetime(2010, 1, 1, tzinfo=timezone.utc)
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def _bare_worker(concept_ids: list[str]) -> int:
    """One worker of the bare loop: the same resources and per-granule function, no Dagster."""
    resources = resources_from_env()
    dataset = {d.id: d for d in load_datasets()}["omdoao3e"]
    services = chain.Services(dataset, resources["cmr"], resources["earthdata"], resources["catalog"], resources["stac_api"])
    found = services.cmr.granules(dataset.cmr, concept_ids)
    scratch = Path(tempfile.mkdtemp())
    failed = 0
    for concept_id in concept_ids:
        outcome = chain.process(services, concept_id, found.get(concept_id), set(chain.STEPS), scratch)
        failed += outcome.error is not None
    shutil.rmtree(scratch, ignore_errors=True)
    return failed


def run_bare(concept_ids: list[str], concurrency: int) -> float:
    shares = [concept_ids[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    with ProcessPoolExecutor(concurrency) as pool:
        failed = sum(pool.map(_bare_worker, shares))
    assert failed == 0, f"{failed} granules failed in the bare loop"
    return time.perf_counter() - started


def run_dagster(concept_ids: list[str], concurrency: int, env: dict[str, str], home: Path) -> tuple[float, int]:
    from dagster import DagsterInstance
    from dagster._core.execution.backfill import BulkActionStatus

    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    config["run_queue"]["max_concurrent_runs"] = concurrency
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-m", "cog_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=(home / "dagster-dev.log").open("wb"),
        start_new_session=True,
    )
    try:
        graphql = f"http://127.0.0.1:{port}/graphql"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.post(graphql, json={"query": "{ version }"}, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"dagster dev did not start; see {home / 'dagster-dev.log'}")
            time.sleep(0.5)
        os.environ["DAGSTER_HOME"] = str(home)
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("omdoao3e_granules", concept_ids)
            params = {
                "partitionNames": concept_ids,
                "assetSelection": [{"path": ["omdoao3e", step]} for step in chain.STEPS],
                "fromFailure": False,
                "tags": [],
            }
            started = time.perf_counter()
            answer = httpx.post(graphql, json={"query": LAUNCH, "variables": {"params": params}}, timeout=60).json()
            launched = answer["data"]["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill_id = launched["backfillId"]
            while True:
                backfill = instance.get_backfill(backfill_id)
                if backfill.status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
                    break
                time.sleep(0.25)
            elapsed = time.perf_counter() - started
            assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, backfill.status
            runs = len(instance.get_run_ids())
            return elapsed, runs
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)


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
                "COG_ASSETS_EARTHDATA_HOSTS": "127.0.0.1",
                "PYTHONPATH": str(ROOT),
            }
            os.environ.update({**base_env, "COG_ASSETS_STORAGE": f"s3://{s3.bucket}/bare"})
            bare = run_bare(concept_ids, args.concurrency)
            home = work / "dagster_home"
            home.mkdir()
            dagster_env = {**base_env, "COG_ASSETS_STORAGE": f"s3://{s3.bucket}/dagster", "DAGSTER_HOME": str(home)}
            dagster, runs = run_dagster(concept_ids, args.concurrency, dagster_env, home)
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    per_run = dataset.backfill.granules_per_run
    print(f"\nbackfill of {args.granules} OMDOAO3e granules, concurrency {args.concurrency}, "
          f"{per_run} granules per run ({runs} runs)")
    print(f"{'':<28}{'wall s':>9}{'per granule s':>15}")
    print(f"{'bare loop (chain.process)':<28}{bare:>9.1f}{bare / args.granules:>15.3f}")
    print(f"{'Dagster backfill (UI path)':<28}{dagster:>9.1f}{dagster / args.granules:>15.3f}")
    print(f"{'ratio Dagster / bare':<28}{dagster / bare:>9.2f}   (target <= 1.30)")


if __name__ == "__main__":
    main()
