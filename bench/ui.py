"""UI benchmark: the GraphQL query the asset page makes for partition status, by partition count.

Registers N granule partitions of omdoao3e (1,000 of them materialized, spread evenly), then
times, against a running `dagster dev` webserver, the partition-health query the asset's
Partitions tab sends (partition keys + materialized/failed/in-progress statuses): the first
call (status cache cold) and the next (warm). Then the same for gpm_3imerghh, partitioned by
UTC day (the 400,000-granule design: ~10,500 days since 1998, 1,000 materialized). Prints a table.

    python bench/ui.py [--partitions 10000 100000 400000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cog_assets_tests.dagster_dev import DagsterDev  # noqa: E402

PARTITION_HEALTH = """
query PartitionHealth($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses {
          materializedPartitions materializingPartitions failedPartitions
        }
        ... on TimePartitionStatuses {
          ranges { status startKey endKey }
        }
      }
    }
  }
}
"""


def measure(count: int | None, every_day: bool = False) -> tuple[str, int, float, float, float, int]:
    """(design, partitions, setup s, cold s, warm s, materialized); count None: the by-day
    design, with 1,000 days materialized or (every_day) all of them, as after a full backfill."""
    from dagster import AssetKey, AssetMaterialization, DagsterInstance

    from cog_assets.dataset import load_datasets
    from cog_assets.defs.partitions import build_partitions_def

    home = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}, "PYTHONPATH": str(ROOT)}
    os.environ["DAGSTER_HOME"] = str(home)
    if count is None:
        dataset = {d.id: d for d in load_datasets()}["gpm_3imerghh"]
        keys = build_partitions_def(dataset).get_partition_keys()
    else:
        dataset = {d.id: d for d in load_datasets()}["omdoao3e"]
        keys = [f"G{3_000_000_000 + n}-GES_DISC" for n in range(count)]
    asset = AssetKey([dataset.id, "stac_item"])
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        if not dataset.by_day:
            for start in range(0, len(keys), 50_000):  # one call with 400,000 keys exceeds SQLite's variable limit
                instance.add_dynamic_partitions(dataset.partitions_name, keys[start : start + 50_000])
        for key in keys if every_day else keys[:: max(1, len(keys) // 1000)]:
            instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=key))
    setup = time.perf_counter() - started
    dev = DagsterDev(home, env)
    try:
        variables = {"assetKey": {"path": asset.path}}
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            answer = dev.graphql(PARTITION_HEALTH, variables)
            timings.append(time.perf_counter() - started)
        node = answer["data"]["assetNodeOrError"]
        statuses = node["assetPartitionStatuses"]
        if dataset.by_day:
            first = {key: n for n, key in enumerate(keys)}
            materialized = sum(
                first[r["endKey"]] - first[r["startKey"]] + 1 for r in statuses["ranges"] if r["status"] == "MATERIALIZED"
            )
        else:
            materialized = len(statuses["materializedPartitions"])
        assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == len(keys)
    finally:
        dev.stop()
        shutil.rmtree(home, ignore_errors=True)
    design = "by day (GPM, since 1998)" if dataset.by_day else "by granule"
    return design, len(keys), setup, timings[0], timings[1], materialized


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    rows = [measure(count) for count in [*args.partitions, None]] + [measure(None, every_day=True)]
    print("\nasset page partition-status query (<dataset>/stac_item), SQLite instance")
    print(f"{'design':<26}{'partitions':>11}{'materialized':>14}{'setup s':>9}{'cold s':>9}{'warm s':>9}{'warm vs first':>15}")
    for design, count, setup, cold, warm, materialized in rows:
        print(f"{design:<26}{count:>11}{materialized:>14}{setup:>9.1f}{cold:>9.2f}{warm:>9.2f}{warm / rows[0][4]:>15.2f}")


if __name__ == "__main__":
    main()
