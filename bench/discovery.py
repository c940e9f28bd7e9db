"""Discovery benchmark: register N granules from the test CMR server through the sensor.

Prints total time, ticks, max tick and idle tick, and the ratio of the sensor's total time
to a bare CMR harvest (``bench/bare.py``: httpx and json paging the same catalogue, no line of
cog_assets) measured in the same process. Targets: 100,000 in <= 60 s, no tick > 30 s, idle tick <= 1 s.

    python bench/discovery.py [--granules 100000] [--page-size 2000]
    python bench/discovery.py --dataset gpm_3imerghh --granules 400000 [--partitioning granule]

For a dataset partitioned by day (GPM IMERG), nothing is registered: the days exist by the
calendar, and the table shows how many daily partitions cover the catalogue instead. Its
sensor does not read the history at all (only what is published from now on, plus the recent
window), so its first tick is the whole cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster import DagsterInstance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test server lives in cog_assets_tests

import bare  # noqa: E402  (bench/bare.py: no cog_assets code)
from table import print_measures  # noqa: E402  (bench/table.py)
from cog_assets.defs.assets import build_dataset_assets
from cog_assets.dataset import PartitioningConfig, load_datasets
from cog_assets_tests.helpers import sensor_for
from cog_assets_tests.cmr_server import FakeCmr
from cog_assets_tests.helpers import SensorHarness, add_omi_days, imerg_file_name, is_idle


def _tick_until_idle(harness: SensorHarness) -> tuple[list[float], float, float]:
    """Tick until a tick finds nothing to do: each tick's seconds, the idle tick's, the total
    (without the idle tick)."""
    ticks: list[float] = []
    started = time.perf_counter()
    while True:
        tick_start = time.perf_counter()
        result = harness.tick()
        elapsed = time.perf_counter() - tick_start
        if is_idle(result) and ticks:
            idle = elapsed
            break
        ticks.append(elapsed)  # the first tick counts even when it finds nothing to do
        if is_idle(result):  # by day: no history to register, the calendar holds it
            idle = 0.0
            break
    return ticks, idle, time.perf_counter() - started - idle


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--granules", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--dataset", default="omdoao3e", choices=["omdoao3e", "gpm_3imerghh"],
                        help="omdoao3e: daily granules; gpm_3imerghh: half-hourly (the 400,000 case)")
    parser.add_argument("--partitioning", choices=["granule", "day"],
                        help="override the dataset's partitioning (compare the two designs)")
    args = parser.parse_args()
    dataset = {d.id: d for d in load_datasets()}[args.dataset]
    if args.partitioning == "granule":
        dataset = dataset.model_copy(update={"partitioning": PartitioningConfig()})
    elif args.partitioning == "day":
        dataset = dataset.model_copy(update={"partitioning": PartitioningConfig(by="day", granules_per_day=1)})
    # a history ending a week ago, so nothing is auto-run (first activation)
    step = timedelta(days=1) if args.dataset == "omdoao3e" else timedelta(minutes=30)
    first = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - step * args.granules - timedelta(days=7)
    dataset = dataset.model_copy(update={"cmr": dataset.cmr.model_copy(update={"temporal_start": first})})
    built = build_dataset_assets(dataset)
    sensor_def = sensor_for(dataset)

    with FakeCmr() as cmr, DagsterInstance.local_temp() as instance:
        if args.dataset == "omdoao3e":
            add_omi_days(cmr, dataset, first, args.granules)
        else:
            cmr.add_many([
                dict(short_name=dataset.cmr.short_name, version=dataset.cmr.version, provider=dataset.cmr.provider,
                     file_name=imerg_file_name(first + step * i), begin=first + step * i,
                     end=first + step * (i + 1) - timedelta(milliseconds=1))
                for i in range(args.granules)
            ])

        started = time.perf_counter()
        harvested = bare.harvest(cmr.url, dataset.cmr.short_name, dataset.cmr.version, dataset.cmr.provider, args.page_size)
        bare_seconds = time.perf_counter() - started
        assert harvested == args.granules

        harness = SensorHarness(sensor_def, cmr.url, instance, page_size=args.page_size)
        ticks, idle, total = _tick_until_idle(harness)
        if dataset.by_day:
            registered = 0
            partitions = built.partitions_def.get_num_partitions()
        else:
            registered = partitions = len(instance.get_dynamic_partitions(dataset.partitions_name))
        idle_start = time.perf_counter()
        assert is_idle(harness.tick())
        idle2 = time.perf_counter() - idle_start

    rows = [
        ("partitioning", dataset.partitioning.by, ""),
        ("granules in CMR", f"{args.granules:,}", ""),
        ("partitions registered", f"{registered:,}", f"{args.granules:,}" if not dataset.by_day else "0 (calendar)"),
        ("partitions covering them", f"{partitions:,}", ""),
        ("sensor ticks", f"{len(ticks)}", ""),
        ("total sensor time (s)", f"{total:.1f}", "<= 60"),
        ("max tick (s)", f"{max(ticks):.1f}", "<= 30"),
        ("idle tick (s)", f"{max(idle, idle2):.2f}", "<= 1"),
        ("bare CMR harvest (s)", f"{bare_seconds:.1f}", "baseline"),
        ("sensor / bare harvest", f"{total / bare_seconds:.2f}x", ""),
    ]
    print_measures(rows)


if __name__ == "__main__":
    main()
