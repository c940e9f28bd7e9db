"""Memory benchmark: peak RSS of one run against the number of granules it processes.

Each measurement is a fresh process that materializes a range of N OMDOAO3e partitions in one
run (as a backfill run does), against the test CMR server and SeaweedFS, with the run's default
in-run concurrency: granules several at once, conversions in converter processes (one per core).
The run's memory is its own peak plus its converters' (each converter's peak, times their
number: an upper bound, as they need not peak together). Granules in flight are bounded and their
scratch files removed, so it should stay flat. Target: <= 800 MB for 50 granules. Prints a table.

    python bench/memory.py [--sizes 1 10 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cog_assets_tests.cmr_server import FakeCmr  # noqa: E402
from cog_assets_tests.granule_files import make_omi_granule  # noqa: E402
from cog_assets_tests.helpers import omi_file_name  # noqa: E402
from cog_assets_tests.services import start_seaweedfs  # noqa: E402

FIRST_DAY = datetime(2010, 1, 1, tzinfo=timezone.utc)

ONE_RUN = """
import json, resource, sys, time
from dagster import DagsterInstance, materialize
from cog_assets.processing.lanes import available_cores
from cog_assets.definitions import build_definitions
from cog_assets.defs.assets import build_dataset_assets
from cog_assets.dataset import load_datasets

keys = json.loads(sys.argv[1])
defs = build_definitions()
dataset = {d.id: d for d in load_datasets()}["omdoao3e"]
built = build_dataset_assets(dataset)
with DagsterInstance.ephemeral() as instance:
    instance.add_dynamic_partitions(dataset.partitions_name, keys)
    started = time.perf_counter()
    result = materialize(
        [built.chain], instance=instance, resources=defs.resources,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    elapsed = time.perf_counter() - started
    done = len(instance.get_materialized_partitions(built.granule_chain[-1]))
converters = min(available_cores(), len(keys)) if len(keys) > 1 and available_cores() > 1 else 0
print(json.dumps({"ok": result.success and done == len(keys), "seconds": elapsed,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "converters": converters,
                  "converter_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if converters else 0.0}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    s3 = start_seaweedfs(work / "weed")
    content = make_omi_granule().content
    rows = []
    try:
        with FakeCmr() as cmr:
            for n, size in enumerate(args.sizes):
                days = [FIRST_DAY + timedelta(days=1000 * n + d) for d in range(size)]
                keys = [  # the partition keys of the contract: <YYYY-MM-DD>_<concept-id>
                    f"{day:%Y-%m-%d}_" + cmr.add_granule(
                        short_name="OMDOAO3e", version="003", file_name=omi_file_name(day), begin=day,
                        end=day + timedelta(hours=23), content=content,
                    ).concept_id
                    for day in days
                ]
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith(("COG_ASSETS_", "DAGSTER_"))},
                    **s3.env(), "COG_ASSETS_CMR_URL": cmr.url, "EARTHDATA_TOKEN": cmr.token or "",
                    "COG_ASSETS_INSECURE_TESTING_ORIGINS": "http://127.0.0.1", "PYTHONPATH": str(ROOT),
                    "COG_ASSETS_STORAGE": f"s3://{s3.bucket}/memory-{size}",
                }
                out = subprocess.run(
                    [sys.executable, "-c", ONE_RUN, json.dumps(keys)], env=env, capture_output=True, text=True,
                    timeout=3600,
                )
                if out.returncode != 0:
                    raise RuntimeError(f"the run of {size} granules failed:\n{out.stderr[-3000:]}")
                measured = json.loads(out.stdout.strip().splitlines()[-1])
                assert measured["ok"], out.stderr[-3000:]
                rows.append((size, measured))
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\npeak RSS of one run (fresh process) by granules in the run; load average {os.getloadavg()[0]:.1f}")
    print("| granules | run MB | converters × peak MB | run + converters MB | run s | s / granule |\n|---|---|---|---|---|---|")
    for size, m in rows:
        total = m["peak_mb"] + m["converters"] * m["converter_mb"]
        print(f"| {size} | {m['peak_mb']:.0f} | {m['converters']} × {m['converter_mb']:.0f} | {total:.0f} | "
              f"{m['seconds']:.1f} | {m['seconds'] / size:.2f} |")
    print("target: flat, <= 800 MB for 50 granules (run + converters)")


if __name__ == "__main__":
    main()
