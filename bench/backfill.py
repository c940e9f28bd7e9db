"""Backfill benchmark: a UI-launched backfill on the production profile against a bare loop that
shares no code with the product (``bench/bare.py``), same services, same machine.

Services, all on loopback: the test CMR server (downloads with a bearer token), SeaweedFS (S3),
PostgreSQL 15 (durable: fsync and synchronous commits on) behind PgBouncer (``deploy/pgbouncer.ini``).

* bare: ``--workers`` processes (default: the cores), each working through its share of the
  granules one after the other;
* Dagster: ``dagster dev`` on ``deploy/dagster.yaml`` (PostgreSQL through PgBouncer, compute
  logs on S3, planned events per asset; the default run launcher stands in for ECS, run queue
  limited to ``--runs``), the backfill launched through GraphQL ``launchPartitionBackfill`` as
  the UI's "Materialize partitions" dialog does, timed until the daemon marks it complete.

Reports, per backfill: wall times and their ratio, launch → first run started, last step →
backfill complete, Dagster's in-run cost per granule (time the run's main thread spent handing
events to Dagster, as each run logs it, and run start-up), and the machine's load. Prints tables.

    python bench/backfill.py [--omi 100 1000] [--gpm-days 10] [--history 0]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test services live in cog_assets_tests

import bare  # noqa: E402  (bench/bare.py: no cog_assets code)
from cog_assets_tests.cmr_server import FakeCmr  # noqa: E402
from cog_assets_tests.dagster_dev import DagsterDev  # noqa: E402
from cog_assets_tests.granule_files import imerg_values, make_imerg_granule, make_omi_granule  # noqa: E402
from cog_assets_tests.helpers import imerg_file_name, omi_file_name, partition_of  # noqa: E402
from cog_assets_tests.services import start_pgbouncer, start_postgres, start_seaweedfs  # noqa: E402

STEPS = ("granule", "cog", "stac_item")
_CLOCK = re.compile(r"Dagster took ([\d.]+) s \(([\d.]+) s of CPU\) to record (\d+) events")


@dataclass
class Services:
    s3: object
    postgres: object
    bouncer: object
    cmr: FakeCmr


@dataclass
class Backfill:
    label: str
    dataset: str
    granules: list  # the fake CMR's granules
    partitions: list[str]


@dataclass
class Measured:
    bare: float
    wall: float  # launch → backfill marked complete
    first_run: float  # launch → first run started
    first_created: float  # launch → the daemon created the first run (its backfill loop's wait)
    completion_lag: float  # last run ended → backfill marked complete
    runs: int
    event_ms: float  # per granule: the runs' main threads handing events to Dagster (wall)
    event_cpu_ms: float  # the same, CPU time of those threads
    startup_ms: float  # per granule: run started → its step started (imports, resources)
    load: tuple[float, float]  # 1-minute load average before, after


def _omi(cmr: FakeCmr, count: int, first_day: datetime) -> Backfill:
    content = make_omi_granule().content
    granules = [
        cmr.add_granule(short_name="OMDOAO3e", version="003", file_name=omi_file_name(first_day + timedelta(days=n)),
                        begin=first_day + timedelta(days=n), end=first_day + timedelta(days=n, hours=23, minutes=59),
                        content=content)
        for n in range(count)
    ]
    return Backfill(f"{count} OMI granules", "omdoao3e", granules, [partition_of(g) for g in granules])


def _gpm(cmr: FakeCmr, days: int, first_day: datetime) -> Backfill:
    content = make_imerg_granule(imerg_values()).content  # 3600 x 1800, one file shared by all
    granules = []
    for n in range(days * 48):
        begin = first_day + timedelta(minutes=30 * n)
        granules.append(cmr.add_granule(
            short_name="GPM_3IMERGHH", version="07", file_name=imerg_file_name(begin), begin=begin,
            end=begin + timedelta(minutes=30, milliseconds=-1), content=content,
        ))
    keys = [f"{first_day + timedelta(days=d):%Y-%m-%d}" for d in range(days)]
    return Backfill(f"{days} GPM days ({days * 48} granules)", "gpm_3imerghh", granules, keys)


def run_bare(services: Services, backfill: Backfill, workers: int) -> float:
    token = services.cmr.token or ""
    jobs = [bare.BareGranule(backfill.dataset, g.concept_id, g.file_name, services.cmr.file_url(g), g.md5 or "",
                             g.begin.isoformat(), g.end.isoformat()) for g in backfill.granules]
    shares = [jobs[n::workers] for n in range(workers)]
    prefix = f"bare-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(bare.process, shares, [services.s3.bucket] * workers, [prefix] * workers, [token] * workers))
    return time.perf_counter() - started


def _home(work: Path, services: Services, runs: int, profile: str) -> tuple[Path, dict[str, str]]:
    """deploy/dagster.yaml as shipped, except what needs AWS itself (as test_backfill does); or
    the embedded default (dagster.yaml: SQLite in DAGSTER_HOME)."""
    home = work / f"home-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    if profile == "production":
        config = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
        del config["run_launcher"]
        config["compute_logs"]["config"].update(endpoint_url=services.s3.endpoint, use_ssl=False, region="us-east-1")
    else:
        config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
        config["storage"]["sqlite"]["base_dir"] = str(home)
    config["concurrency"]["runs"]["max_concurrent_runs"] = runs
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    database = f"bench_{uuid.uuid4().hex[:8]}"
    services.postgres.create_database(database)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))},
        **services.s3.env(),
        "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(services.bouncer.port), "DAGSTER_PG_DB": database,
        "DAGSTER_PG_USERNAME": "postgres", "DAGSTER_PG_PASSWORD": "unused-trust-auth",
        "DAGSTER_COMPUTE_LOGS_BUCKET": services.s3.bucket, "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "COG_ASSETS_CMR_URL": services.cmr.url, "EARTHDATA_TOKEN": services.cmr.token or "",
        "COG_ASSETS_INSECURE_TESTING_ORIGINS": "http://127.0.0.1",
        "COG_ASSETS_STORAGE": f"s3://{services.s3.bucket}/dagster-{uuid.uuid4().hex[:8]}", "PYTHONPATH": str(ROOT),
    }
    return home, env


def _history(instance, dataset: str, count: int) -> None:
    """``count`` granules' worth of earlier materializations (three assets each) in the event log."""
    from dagster import AssetKey, AssetMaterialization

    keys = [f"1990-01-01_G{9_000_000_000 + n}-GES_DISC" for n in range(count)]
    instance.add_dynamic_partitions(f"{dataset}_granules", keys)
    for key in keys:
        for step in STEPS:
            instance.report_runless_asset_event(AssetMaterialization(AssetKey([dataset, step]), partition=key,
                                                                     metadata={"uri": f"s3://history/{key}"}))


def _launch(dev: DagsterDev, instance, backfill: Backfill, direct: bool) -> float | None:
    """Launch as the UI's backfill dialog does, or (``direct``) as ranged runs of the dataset's
    backfill size straight to the run queue, as the Launchpad with range tags does; waits until
    done and returns when the backfill was marked complete (None for direct runs)."""
    from dagster._core.execution.backfill import BulkActionStatus

    from cog_assets.dataset import load_datasets

    paths = [[backfill.dataset, step] for step in STEPS]
    deadline = time.monotonic() + 7200
    if direct:
        size = {d.id: d for d in load_datasets()}[backfill.dataset].partitions_per_run
        ids = [dev.launch_ranged_run(f"{backfill.dataset}_granule_job", chunk[0], chunk[-1], paths)
               for chunk in (backfill.partitions[n:n + size] for n in range(0, len(backfill.partitions), size))]
        while not all((run := instance.get_run_by_id(i)) is not None and run.is_finished for i in ids):
            assert time.monotonic() < deadline, "runs did not finish in 2 hours"
            time.sleep(0.2)
        assert all(instance.get_run_by_id(i).status.value == "SUCCESS" for i in ids)
        return None
    backfill_id = dev.launch_backfill(backfill.partitions, paths)
    while (status := instance.get_backfill(backfill_id)).status == BulkActionStatus.REQUESTED:
        assert time.monotonic() < deadline, "backfill did not complete in 2 hours"
        time.sleep(0.2)
    assert status.status == BulkActionStatus.COMPLETED_SUCCESS, status.status
    return status.backfill_end_timestamp or time.time()


def run_dagster(work: Path, services: Services, backfill: Backfill, args: argparse.Namespace) -> dict[str, float]:
    from dagster import DagsterEventType, DagsterInstance

    home, env = _home(work, services, args.runs, args.profile)
    dev = DagsterDev(home, env)
    try:
        os.environ.update({"DAGSTER_HOME": str(home), **{k: v for k, v in env.items() if k.startswith("DAGSTER_PG")}})
        with DagsterInstance.get() as instance:
            if args.history:
                _history(instance, backfill.dataset, args.history)
            if backfill.dataset == "omdoao3e":
                instance.add_dynamic_partitions("omdoao3e_granules", backfill.partitions)
            launched = time.time()
            completed = _launch(dev, instance, backfill, args.direct)
            records = instance.get_run_records()
            stats = [instance.get_run_stats(r.dagster_run.run_id) for r in records]
            clock = [0.0, 0.0]
            startup = 0.0
            for record, stat in zip(records, stats):
                logs = instance.all_logs(record.dagster_run.run_id)
                step_start = min(e.timestamp for e in logs if e.dagster_event_type == DagsterEventType.STEP_START)
                startup += step_start - stat.start_time
                for entry in logs:
                    if (found := _CLOCK.search(entry.user_message or "")) is not None:
                        clock[0] += float(found.group(1))
                        clock[1] += float(found.group(2))
            for record, stat in zip(records, stats):
                tags = record.dagster_run.tags
                print(f"  run {record.dagster_run.run_id[:8]}: {tags.get('dagster/asset_partition_range_start')} → "
                      f"{tags.get('dagster/asset_partition_range_end')}, {stat.end_time - stat.start_time:.1f} s, "
                      f"assets {sorted(k.path[-1] for k in record.dagster_run.asset_selection or [])}", flush=True)
            count, last_end = len(backfill.granules), max(s.end_time for s in stats)
            return {
                "wall": (completed or last_end) - launched,
                "first_run": min(s.start_time for s in stats) - launched,
                "first_created": min(r.create_timestamp.timestamp() for r in records) - launched,
                "completion_lag": (completed or last_end) - last_end,
                "runs": len(records), "event_ms": 1000 * clock[0] / count, "event_cpu_ms": 1000 * clock[1] / count,
                "startup_ms": 1000 * startup / count,
            }
    finally:
        dev.stop()


def measure(work: Path, services: Services, backfill: Backfill, args: argparse.Namespace) -> Measured:
    before = os.getloadavg()[0]
    bare_seconds = run_bare(services, backfill, args.workers)
    dagster = run_dagster(work, services, backfill, args)
    return Measured(bare_seconds, load=(before, os.getloadavg()[0]), **dagster)


def report(results: list[tuple[Backfill, Measured]], args: argparse.Namespace) -> None:
    how = "ranged runs launched directly (Launchpad, range tags)" if args.direct else "UI-launched backfill"
    print(f"\n{how} ({args.profile} profile) vs bare loop ({args.workers} processes), at most {args.runs} runs at "
          f"once, {args.history} granules of earlier history")
    header = ("backfill", "bare s", "Dagster s", "ratio", "runs", "→1st run s (created)", "last→done s", "events CPU ms/g",
              "events wall ms/g", "start-up ms/g", "load")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for backfill, m in results:
        cells = [backfill.label, f"{m.bare:.1f}", f"{m.wall:.1f}", f"{m.wall / m.bare:.2f}x", str(m.runs),
                 f"{m.first_run:.1f} ({m.first_created:.1f})", f"{m.completion_lag:.1f}", f"{m.event_cpu_ms:.1f}", f"{m.event_ms:.1f}",
                 f"{m.startup_ms:.1f}",
                 f"{m.load[0]:.1f}→{m.load[1]:.1f}"]
        print("| " + " | ".join(cells) + " |")
    print("targets: 1,000 OMI <= 1.1x, 100 OMI <= 2.0x; launch → first run and last step → complete <= 10 s; "
          "events <= 60 ms per granule")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--omi", type=int, nargs="*", default=[100, 1000], help="OMI backfill sizes (granules)")
    parser.add_argument("--gpm-days", type=int, default=10, help="a GPM backfill of this many days (0: none)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="bare loop processes")
    parser.add_argument("--runs", type=int, default=2, help="Dagster runs at once (run queue limit)")
    parser.add_argument("--history", type=int, default=0, help="granules of earlier history in the event log")
    parser.add_argument("--direct", action="store_true", help="launch ranged runs directly instead of a backfill")
    parser.add_argument("--profile", choices=["production", "embedded"], default="production",
                        help="deploy/dagster.yaml (PostgreSQL via PgBouncer) or dagster.yaml (SQLite)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    s3 = start_seaweedfs(work / "weed")
    os.environ.update(s3.env())  # the bare workers' boto3 and the benchmark's own S3 client
    postgres = start_postgres(durable=True)  # a deployment's defaults, not the tests' shortcuts
    bouncer = start_pgbouncer(postgres, ROOT / "deploy" / "pgbouncer.ini")
    results = []
    try:
        with FakeCmr() as cmr:
            services = Services(s3, postgres, bouncer, cmr)
            first = datetime(2005, 1, 1, tzinfo=timezone.utc)
            backfills = [_omi(cmr, n, first + timedelta(days=3000 * i)) for i, n in enumerate(args.omi)]
            if args.gpm_days:
                backfills.append(_gpm(cmr, args.gpm_days, datetime(2020, 6, 1, tzinfo=timezone.utc)))
            for backfill in backfills:
                results.append((backfill, measure(work, services, backfill, args)))
                report(results[-1:], args)
    finally:
        bouncer.stop()
        postgres.stop()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)


if __name__ == "__main__":
    main()
