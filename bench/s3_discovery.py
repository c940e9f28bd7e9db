"""S3 discovery benchmark: a prefix of N keys on SeaweedFS registered through the S3 sensor.

Uploads N empty objects named like a daily product (``no2_<YYYYMMDD>_<k>.tif``, 100 a day)
plus 1% sidecars that do not match the pattern, then, in the same process:

* baseline: a bare boto3 ``list_objects_v2`` paginator over the prefix with the same regular
  expression applied to every name (no Dagster, no bookkeeping);
* the sensor's first pass (switched on after the upload: everything is history, registered for
  backfills), tick by tick with the default budget (50,000 objects or 20 s a tick);
* an idle tick (between passes: only the names after the last one);
* a full re-listing pass with nothing changed, and one after 100 new objects, 100 overwrites
  and 100 deletions (what it reports is checked).

Targets: no tick over 30 s, idle tick <= 1 s.

    python bench/s3_discovery.py [--keys 250000] [--threads 48]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster import DagsterInstance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test services live in cog_assets_tests

from cog_assets.dataset import load_datasets
from cog_assets.sources.s3.discover import ListingCursor
from cog_assets_tests.helpers import SensorHarness, is_idle, sensor_for
from cog_assets_tests.services import start_seaweedfs
from table import print_measures  # noqa: E402  (bench/table.py; the script's folder is on the path)

PATTERN = r"^no2_(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})_\d{3}\.tif$"
PREFIX = "bench/no2-daily/"
FIRST_DAY = datetime(2000, 1, 1, tzinfo=timezone.utc)


def name(n: int) -> str:
    return f"no2_{FIRST_DAY + timedelta(days=n // 100):%Y%m%d}_{n % 100:03d}.tif"


def upload(client, bucket: str, keys: list[str], threads: int, body: bytes = b"") -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body), keys))
    return time.perf_counter() - started


def bare_listing(client, bucket: str) -> tuple[float, int, int]:
    """The baseline: boto3's paginator and the pattern, nothing else."""
    pattern, matching, listed = re.compile(PATTERN), 0, 0
    started = time.perf_counter()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX, Delimiter="/"):
        for obj in page.get("Contents", []):
            listed += 1
            matching += pattern.search(obj["Key"][len(PREFIX):]) is not None
    return time.perf_counter() - started, listed, matching


def run_pass(harness: SensorHarness) -> list[tuple[float, int]]:
    """Ticks until the pass in progress is complete: (seconds, partitions added) per tick."""
    ticks = []
    while True:
        added_before = len(harness.added)
        started = time.perf_counter()
        harness.tick()
        ticks.append((time.perf_counter() - started, len(harness.added) - added_before))
        if not ListingCursor.from_json(harness.cursor).in_pass:
            return ticks


def timed_tick(harness: SensorHarness):
    started = time.perf_counter()
    result = harness.tick()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=250_000)
    parser.add_argument("--threads", type=int, default=48)
    args = parser.parse_args()
    no2 = {d.id: d for d in load_datasets()}["no2_monthly"]
    with tempfile.TemporaryDirectory(prefix="s3-bench-") as folder:
        server = start_seaweedfs(Path(folder) / "weed")
        os.environ.update(server.env())  # the sensor's S3 resource reads credentials as a deployment does
        try:
            rows = bench(server, no2, args)
        finally:
            server.stop()
    print_measures(rows, value_width=14)


def bench(server, no2, args) -> list[tuple[str, str, str]]:
    client, bucket = server.client(), server.bucket
    matching_keys = [PREFIX + name(n) for n in range(args.keys)]
    sidecars = [key + ".aux.xml" for key in matching_keys[:: 100]]
    upload_seconds = upload(client, bucket, matching_keys + sidecars, args.threads)
    time.sleep(61)  # a bench, not a test: the sensor is switched on a minute after the upload (all history)
    bare_seconds, listed, bare_matching = bare_listing(client, bucket)
    assert (listed, bare_matching) == (len(matching_keys) + len(sidecars), len(matching_keys))

    source = no2.source.model_copy(update={"url": f"s3://{bucket}/{PREFIX}", "pattern": PATTERN, "datetime_range": "day"})
    dataset = no2.model_copy(update={"source": source})
    with DagsterInstance.local_temp() as instance:
        harness = SensorHarness(sensor_for(dataset), "", instance, s3=server)
        first = run_pass(harness)
        registered = len(instance.get_dynamic_partitions("no2_monthly_granules"))
        idle = [timed_tick(harness) for _ in range(3)]
        assert all(is_idle(result) for _, result in idle) and registered == args.keys
        relister = SensorHarness(sensor_for(dataset, relist_minutes=0), "", instance, s3=server, cursor=harness.cursor)
        unchanged = run_pass(relister)
        new = [PREFIX + name(args.keys + n) for n in range(100)]
        upload(client, bucket, new, args.threads)
        upload(client, bucket, matching_keys[1000:1100], args.threads, b"revised")  # a new ETag
        for key in matching_keys[5000:5100]:
            client.delete_object(Bucket=bucket, Key=key)
        changed, requests = [], []
        while True:
            seconds, result = timed_tick(relister)
            changed.append((seconds, 0))
            requests += result.run_requests or []
            if not ListingCursor.from_json(relister.cursor).in_pass:
                break
    runs = sum(int(r.tags.get("cog_assets/granules", 0)) for r in requests if r.job_name.endswith("_granule_job"))
    withdrawn = sum(int(r.tags.get("cog_assets/granules", 0)) for r in requests if r.job_name.endswith("_withdraw"))
    total = sum(s for s, _ in first)
    return [
        ("keys in the prefix (matching + sidecars)", f"{listed:,}", ""),
        ("upload (s, not timed against)", f"{upload_seconds:.0f}", ""),
        ("bare boto3 listing + regex (s)", f"{bare_seconds:.1f}", "baseline"),
        ("first pass: ticks", f"{len(first)}", ""),
        ("first pass: total sensor time (s)", f"{total:.1f}", ""),
        ("first pass: max tick (s)", f"{max(s for s, _ in first):.1f}", "<= 30"),
        ("first pass / bare listing", f"{total / bare_seconds:.2f}x", ""),
        ("partitions registered", f"{registered:,}", f"{args.keys:,}"),
        ("idle tick (s, max of 3)", f"{max(s for s, _ in idle):.2f}", "<= 1"),
        ("re-listing pass, nothing changed: ticks / max tick (s)",
         f"{len(unchanged)} / {max(s for s, _ in unchanged):.1f}", "<= 30"),
        ("re-listing pass after changes: max tick (s)", f"{max(s for s, _ in changed):.1f}", "<= 30"),
        ("  granules run (100 new + 100 overwritten)", f"{runs}", "200"),
        ("  granules withdrawn (100 deleted)", f"{withdrawn}", "100"),
    ]


if __name__ == "__main__":
    main()
