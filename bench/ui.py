"""UI benchmark: the GraphQL query the asset page makes for partition status, by partition count.

Registers N granule partitions of omdoao3e (1,000 of them materialized, spread evenly), then
times, against a running `dagster dev` webserver, the partition-health query the asset's
Partitions tab sends (partition keys + materialized/failed/in-progress statuses): the first
call (status cache cold) and the next (warm). Prints a table.

    python bench/ui.py [--partitions 10000 100000]
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
      }
    }
  }
}
"""


def measure(count: int) -> tuple[float, float, float, int]:
    from dagster import AssetKey, AssetMaterialization, DagsterInstance

    home = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}, "PYTHONPATH": str(ROOT)}
    os.environ["DAGSTER_HOME"] = str(home)
    keys = [f"G{3_000_000_000 + n}-GES_DISC" for n in range(count)]
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        for start in range(0, count, 50_000):  # one call with 400,000 keys exceeds SQLite's variable limit
            instance.add_dynamic_partitions("omdoao3e_granules", keys[start : start + 50_000])
        for key in keys[:: max(1, count // 1000)]:
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key=AssetKey(["omdoao3e", "stac_item"]), partition=key)
            )
    setup = time.perf_counter() - started
    dev = DagsterDev(home, env)
    try:
        variables = {"assetKey": {"path": ["omdoao3e", "stac_item"]}}
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            answer = dev.graphql(PARTITION_HEALTH, variables)
            timings.append(time.perf_counter() - started)
        node = answer["data"]["assetNodeOrError"]
        materialized = len(node["assetPartitionStatuses"]["materializedPartitions"])
        assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == count
    finally:
        dev.stop()
        shutil.rmtree(home, ignore_errors=True)
    return setup, timings[0], timings[1], materialized


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    rows = [(count, *measure(count)) for count in args.partitions]
    print("\nasset page partition-status query (omdoao3e/stac_item), SQLite instance")
    print(f"{'partitions':>11}{'materialized':>14}{'setup s':>9}{'cold s':>9}{'warm s':>9}{'warm vs 10k':>13}")
    for count, setup, cold, warm, materialized in rows:
        print(f"{count:>11}{materialized:>14}{setup:>9.1f}{cold:>9.2f}{warm:>9.2f}{warm / rows[0][3]:>13.2f}")


if __name__ == "__main__":
    main()
