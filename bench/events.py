"""Events benchmark: what one materialization yielded inside a run costs, by instance storage.

A run of a three-asset multi-asset over a range of dynamic partitions yields the chain's three
materializations per partition with metadata of the chain's size (URI, size, checksum, an inline
WebP preview, statistics), and does no other work: the step's time per event is Dagster's
(handing the event to the instance and storing it). Storages: the embedded SQLite; PostgreSQL
15 direct; PostgreSQL behind PgBouncer (deploy/pgbouncer.ini: session pooling, and transaction
pooling for comparison); PostgreSQL durable (fsync, synchronous commits: a deployment's
defaults) and not (the test suite's). Then, on the production profile, the same per-event cost
with 0, 200 and 5,000 granules of earlier history (three materializations each). Prints tables.

    python bench/events.py [--granules 300] [--history 0 200 5000]
"""


import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster import (  # noqa: E402
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DagsterInstance,
    Definitions,
    DynamicPartitionsDefinition,
    MetadataValue,
    define_asset_job,
    multi_asset,
)

from cog_assets_tests.services import Postgres, start_pgbouncer, start_postgres  # noqa: E402

STEPS = ("granule", "cog", "stac_item")
PARTITIONS = DynamicPartitionsDefinition(name="bench_granules")
_TIMES: list[float] = []


@multi_asset(specs=[AssetSpec(["bench", s]) for s in STEPS], partitions_def=PARTITIONS, can_subset=True)
def chain(context: AssetExecutionContext):
    """The chain's events without its work."""
    metadata = {
        "uri": "s3://bucket/bench/cogs/G1/r1/item.tif", "size_bytes": 3504093, "sha256": "ab" * 32,
        "preview": MetadataValue.md("![preview](data:image/webp;base64," + "A" * 2000 + ")"),
        "minimum (DU)": 101.5, "maximum (DU)": 498.2, "mean (DU)": 287.1, "valid_fraction": 0.93,
        "item_id": "OMI-Aura_L3-OMDOAO3e_2005m0101", "cmr_record": MetadataValue.url("https://cmr.example/G1.umm_json"),
    }
    started = time.perf_counter()
    for key in context.partition_keys:
        for step in STEPS:
            yield AssetMaterialization(asset_key=["bench", step], partition=key, metadata=metadata)
    _TIMES.append(time.perf_counter() - started)


JOB = Definitions(assets=[chain], jobs=[define_asset_job("events", selection=[chain])]).get_job_def("events")


def per_event_ms(instance: DagsterInstance, granules: int) -> float:
    keys = [f"k{uuid.uuid4().hex[:12]}" for _ in range(granules)]
    instance.add_dynamic_partitions(PARTITIONS.name, keys)
    _TIMES.clear()
    result = JOB.execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})
    assert result.success
    return 1000 * _TIMES[0] / (3 * granules)


def _instance(config: dict) -> DagsterInstance:
    home = Path(tempfile.mkdtemp(prefix="bench-events-"))
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return DagsterInstance.from_config(str(home))


def _postgres(server: Postgres, port: int) -> dict:
    database = f"events_{uuid.uuid4().hex[:8]}"
    server.create_database(database)
    return {"storage": {"postgres": {"postgres_db": {
        "hostname": "127.0.0.1", "port": port, "db_name": database, "username": "postgres", "password": "unused",
        "scheme": "postgresql+psycopg2"}}}}


def _history(instance: DagsterInstance, granules: int) -> None:
    keys = [f"h{uuid.uuid4().hex[:12]}" for _ in range(granules)]
    instance.add_dynamic_partitions(PARTITIONS.name, keys)
    for key in keys:
        for step in STEPS:
            instance.report_runless_asset_event(AssetMaterialization(AssetKey(["bench", step]), partition=key))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--granules", type=int, default=300, help="granules per measured run")
    parser.add_argument("--history", type=int, nargs="*", default=[0, 200, 5000])
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    ini = ROOT / "deploy" / "pgbouncer.ini"
    transaction = Path(tempfile.mkdtemp()) / "transaction.ini"
    transaction.write_text(ini.read_text().replace("pool_mode = session", "pool_mode = transaction"))
    rows = [("SQLite (embedded default)", per_event_ms(_instance({"storage": {"sqlite": {
        "base_dir": tempfile.mkdtemp()}}}), args.granules))]
    servers = {"durable": start_postgres(durable=True), "no fsync (tests)": start_postgres()}
    history_rows = []
    try:
        for label, server in servers.items():
            rows.append((f"PostgreSQL {label}, direct", per_event_ms(_instance(_postgres(server, server.port)), args.granules)))
            for mode, config in (("session", ini), ("transaction", transaction)):
                bouncer = start_pgbouncer(server, config)
                try:
                    instance = _instance(_postgres(server, bouncer.port))
                    rows.append((f"PostgreSQL {label}, PgBouncer {mode}", per_event_ms(instance, args.granules)))
                    if label == "durable" and mode == "session":
                        done = 0
                        for history in sorted(args.history):
                            _history(instance, history - done)
                            done = history
                            history_rows.append((history, per_event_ms(instance, args.granules)))
                finally:
                    bouncer.stop()
    finally:
        for server in servers.values():
            server.stop()
    print(f"\none materialization yielded in a run ({args.granules} granules × 3 assets), Dagster's time per event")
    print("| instance storage | ms per event | ms per granule (3 events) |\n|---|---|---|")
    for label, ms in rows:
        print(f"| {label} | {ms:.1f} | {3 * ms:.1f} |")
    print("\nproduction profile (PostgreSQL durable, PgBouncer session) by history already in the event log")
    print("| granules of history | ms per event | ms per granule |\n|---|---|---|")
    for history, ms in history_rows:
        print(f"| {history:,} | {ms:.1f} | {3 * ms:.1f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}; target: <= 60 ms per granule, flat")


if __name__ == "__main__":
    main()
