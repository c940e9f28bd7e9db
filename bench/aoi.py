"""AOI statistics benchmark: the platform vs a bare exactextract loop, same files and polygons.

Setup (not timed): SeaweedFS on loopback; ``--cogs`` OMDOAO3e COGs written from synthetic
granules (realistic noise and gaps, ~10 distinct grids cycled) and uploaded under per-revision
style keys; each registered as a materialization of ``omdoao3e/cog`` with the metadata the
chain records (uri, item_id, datetime, cmr_concept_id, sha256), in an on-disk SQLite instance.

1. ``--aois`` AOIs (cities, countries, continents) over every COG: ``aoi_sensor`` registers them
   and requests one run, executed in process (as the code location's in-process executor does);
   vs a bare loop opening each COG once and running exactextract with the same operations over
   the same polygons, then writing one Parquet per AOI to the same S3.
2. A sync of 1 new COG for ``--sync-aois`` AOIs whose tables already hold the whole history:
   the sensor tick plus the run it requests, vs the bare loop over the one new COG (alone, and
   also appending to the same per-AOI Parquet tables).

Target: <= 1.3x for both. Prints a table. Daemon latency (sensor interval, run launch) is not
included: it is a deployment setting, not work.

    python bench/aoi.py [--cogs 1000] [--aois 10] [--sync-aois 100]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
from exactextract import exact_extract

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test servers and synthetic granules live in cog_assets_tests

from dagster import AddDynamicPartitionsRequest, AssetKey, AssetMaterialization, DagsterInstance  # noqa: E402
from dagster import build_sensor_context, materialize  # noqa: E402

from cog_assets.dataset import load_datasets  # noqa: E402
from cog_assets.defs.aoi_sensor import build_aoi_sensor  # noqa: E402
from cog_assets.defs.aoi_statistics import build_aoi_statistics  # noqa: E402
from cog_assets.defs.assets import build_dataset_assets  # noqa: E402
from cog_assets.defs.resources import resources_from_env  # noqa: E402
from cog_assets.formats.cog import write_cog  # noqa: E402
from cog_assets.formats.readers import read_granule  # noqa: E402
from cog_assets_tests.granule_files import make_omi_granule, omi_values  # noqa: E402
from cog_assets_tests.services import start_seaweedfs  # noqa: E402

DAY = datetime(2005, 1, 1, tzinfo=timezone.utc)
COG_KEY = AssetKey(["omdoao3e", "cog"])
SEED_ROWS = 1000
# the bare loop's own settings and operations, written out here, not imported from the product
GDAL = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif"}
OPS = ["mean=mean(coverage_weight=area_spherical_m2)", "min=min", "max=max",
       "stddev=stdev(coverage_weight=area_spherical_m2)", "median=median(coverage_weight=area_spherical_m2)",
       "valid_pixels=count(coverage_weight=none)", "valid_area=count(coverage_weight=area_spherical_m2)",
       "area=count(coverage_weight=area_spherical_m2,default_value=0)"]


def polygon(rng: random.Random, lon: float, lat: float, radius: float) -> dict:
    """An irregular 12-gon of about ``radius`` degrees around a point."""
    import math

    ring = [[lon + radius * rng.uniform(0.7, 1.2) * math.cos(a), lat + radius * 0.8 * rng.uniform(0.7, 1.2) * math.sin(a)]
            for a in (2 * math.pi * k / 12 for k in range(12))]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def make_aois(count: int, seed: int = 7) -> dict[str, dict]:
    """Cities (< a pixel), countries (~5°) and continents (~30°), in proportion 4:4:2."""
    rng, aois = random.Random(seed), {}
    kinds = [("city", 0.05), ("city", 0.05), ("city", 0.05), ("city", 0.05), ("country", 4.0),
             ("country", 4.0), ("country", 4.0), ("country", 4.0), ("continent", 18.0), ("continent", 18.0)]
    for n in range(count):
        kind, radius = kinds[n % len(kinds)]
        lat = rng.uniform(-55 + radius, 70 - radius)
        aois[f"{kind}{n:03d}"] = polygon(rng, rng.uniform(-170 + radius, 170 - radius), lat, radius)
    return aois


def make_cogs(folder: Path, distinct: int = 10) -> list[Path]:
    reader = {d.id: d for d in load_datasets()}["omdoao3e"].reader
    paths = []
    for n in range(distinct):
        granule = folder / f"g{n}.he5"
        granule.write_bytes(make_omi_granule(omi_values(seed=n)).content)
        paths.append(folder / f"c{n}.tif")
        write_cog(read_granule(granule, reader), paths[-1])
    return paths


def register(instance: DagsterInstance, client, bucket: str, prefix: str, cogs: list[Path], n: int) -> str:
    """Upload COG number ``n`` and record it as the chain would; returns its URI."""
    concept = f"G{3_000_000_000 + n}-GES_DISC"
    key, data = f"{prefix}/omdoao3e/cogs/{concept}/r1.tif", cogs[n % len(cogs)].read_bytes()
    client.put_object(Bucket=bucket, Key=key, Body=data)
    partition = f"{(DAY + timedelta(days=n)):%Y-%m-%d}_{concept}"
    instance.add_dynamic_partitions("omdoao3e_granules", [partition])
    instance.report_runless_asset_event(AssetMaterialization(COG_KEY, partition=partition, metadata={
        "uri": f"s3://{bucket}/{key}", "item_id": f"OMI-{n}", "cmr_concept_id": concept,
        "datetime": (DAY + timedelta(days=n)).isoformat(), "sha256": hashlib.sha256(data).hexdigest()}))
    return f"s3://{bucket}/{key}"


def bare(uris: list[str], aois: dict[str, dict], endpoint: str, store: tuple | None = None,
         append: bool = False) -> float:
    """exactextract over each file once with all polygons; with ``store`` (client, bucket,
    prefix), one Parquet per AOI written to S3, or appended to when ``append``."""
    features = [{"type": "Feature", "properties": {"aoi": k}, "geometry": g} for k, g in aois.items()]
    s3 = {"AWS_S3_ENDPOINT": endpoint.split("://", 1)[1], "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}
    started = time.perf_counter()
    rows: dict[str, list[dict]] = {k: [] for k in aois}
    with rasterio.Env(**GDAL, **s3):
        for uri in uris:
            with rasterio.open(uri) as src:
                for result in exact_extract(src, features, OPS, include_cols=["aoi"], output="geojson"):
                    props = result["properties"]
                    rows[props["aoi"]].append({"uri": uri, **{k: v for k, v in props.items() if k != "aoi"}})
    if store is not None:
        client, bucket, prefix = store
        for aoi, new in rows.items():
            key = f"{prefix}/bare/{aoi}.parquet"
            table = pa.Table.from_pylist(new)
            if append:
                old = pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))
                table = pa.concat_tables([old, table.cast(old.schema)])
            elif len(uris) == 1 and len(aois) > 1:  # seeding: a history-sized table per AOI
                table = pa.concat_tables([table] * SEED_ROWS)
            sink = io.BytesIO()
            pq.write_table(table, sink)
            client.put_object(Bucket=bucket, Key=key, Body=sink.getvalue())
    return time.perf_counter() - started


def fresh(*args, **kwargs) -> float:
    """``bare`` in a new interpreter: its GDAL caches start empty, as the platform's run does."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_bare_in_child, args, kwargs).result()


def _bare_in_child(args: tuple, kwargs: dict) -> float:
    if "store" in kwargs:
        from cog_assets_tests.services import S3_KEY, S3_REGION, S3_SECRET
        import boto3

        bucket, prefix, endpoint = kwargs["store"]
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY,
                              aws_secret_access_key=S3_SECRET, region_name=S3_REGION)
        kwargs = {**kwargs, "store": (client, bucket, prefix)}
    return bare(*args, **kwargs)


class Product:
    """aoi_sensor and omdoao3e/aoi_statistics on one instance, runs executed in process."""

    def __init__(self, instance: DagsterInstance, aoi_folder: Path) -> None:
        dataset = {d.id: d for d in load_datasets()}["omdoao3e"]
        self.instance, self.folder = instance, aoi_folder
        self.chain = build_dataset_assets(dataset).chain
        self.asset = build_aoi_statistics(dataset, COG_KEY)
        self.sensor = build_aoi_sensor([dataset])
        self.resources = resources_from_env()
        self.cursor: str | None = None

    def sync(self) -> tuple[float, float]:
        """(sensor tick seconds, run seconds)."""
        started = time.perf_counter()
        result = self.sensor(build_sensor_context(instance=self.instance, cursor=self.cursor,
                                                  resources={"aois": self.resources["aois"]}))
        for request in result.dynamic_partitions_requests or []:
            assert isinstance(request, AddDynamicPartitionsRequest)
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        ticked = time.perf_counter()
        for request in result.run_requests:
            done = materialize([self.chain, self.asset], selection=[self.asset.key], instance=self.instance,
                               partition_key=request.partition_key, tags=request.tags, resources=self.resources)
            assert done.success
        return ticked - started, time.perf_counter() - ticked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cogs", type=int, default=1000)
    parser.add_argument("--aois", type=int, default=10)
    parser.add_argument("--sync-aois", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-aoi-"))
    s3 = start_seaweedfs(work / "s3")
    try:
        os.environ.update(s3.env())
        prefix = "bench"
        os.environ.update(COG_ASSETS_STORAGE=f"s3://{s3.bucket}/{prefix}", COG_ASSETS_AOIS=(work / "aois").as_uri(),
                          DAGSTER_HOME=str(work / "home"))
        (work / "home").mkdir()
        (work / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        (work / "aois").mkdir()
        client = s3.client()
        cogs = make_cogs(work)
        with DagsterInstance.from_config(str(work / "home")) as instance:  # SQLite on disk
            uris = [register(instance, client, s3.bucket, prefix, cogs, n) for n in range(args.cogs)]
            product = Product(instance, work / "aois")
            aois = make_aois(args.sync_aois)
            first = dict(list(aois.items())[: args.aois])
            for name, geometry in first.items():
                (work / "aois" / f"{name}.geojson").write_text(json.dumps(geometry))
            store = {"store": (s3.bucket, prefix, s3.endpoint)}
            bare_first = fresh(uris, first, s3.endpoint, **store)
            tick_first, run_first = product.sync()
            for name, geometry in list(aois.items())[args.aois:]:  # the rest of the 100, synced untimed
                (work / "aois" / f"{name}.geojson").write_text(json.dumps(geometry))
            product.sync()
            fresh(uris[:1], aois, s3.endpoint, **store)  # history-sized bare tables to append to
            new_uri = register(instance, client, s3.bucket, prefix, cogs, args.cogs)
            bare_sync = fresh([new_uri], aois, s3.endpoint)
            bare_sync_stored = fresh([new_uri], aois, s3.endpoint, append=True, **store)
            tick_sync, run_sync = product.sync()
        report(args, bare_first, tick_first, run_first, bare_sync, bare_sync_stored, tick_sync, run_sync)
    finally:
        s3.stop()


def report(args, bare_first, tick_first, run_first, bare_sync, bare_sync_stored, tick_sync, run_sync) -> None:
    first_total, sync_total = tick_first + run_first, tick_sync + run_sync
    rows = [
        (f"{args.aois} AOIs x {args.cogs} COGs", "bare loop (exactextract + Parquet to S3)", f"{bare_first:.2f} s", ""),
        ("", "platform: sensor tick + run", f"{tick_first:.2f} + {run_first:.2f} s",
         f"{first_total / bare_first:.2f}x"),
        (f"sync 1 new COG x {args.sync_aois} AOIs", "bare loop (exactextract only)", f"{bare_sync:.2f} s", ""),
        ("", "bare loop + append to the per-AOI Parquet tables", f"{bare_sync_stored:.2f} s", ""),
        ("", "platform: sensor tick + run", f"{tick_sync:.2f} + {run_sync:.2f} s",
         f"{sync_total / bare_sync:.2f}x / {sync_total / bare_sync_stored:.2f}x"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print("\n" + " | ".join(h.ljust(w) for h, w in zip(("case", "side", "time", "vs bare"), widths)))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
