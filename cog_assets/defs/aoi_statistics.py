"""``<dataset>/aoi_statistics``: zonal statistics of every stored COG, one partition per AOI.

The asset takes the dataset's ``cog`` as an input over all its partitions: the IO manager hands
it a reference per stored COG from the event log, without reading storage. A run covers a range
of AOIs (the sensor asks for all AOIs a change concerns in one run) and works through the COGs,
opening each one once for all the AOIs that need it, and reading only each AOI's window. Rows
still current are reused (see ``analysis.table``), so a sync after one new granule computes
one row per AOI. Each AOI's table goes to the IO manager, stored as
``<dataset>/aoi_statistics/<aoi>.parquet``.
"""


import io
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
from dagster import (
    AllPartitionMapping,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    DynamicPartitionsDefinition,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from cog_assets.analysis.aoi import Aoi
from cog_assets.analysis.chart import line_chart_svg, markdown_image
from cog_assets.analysis.cogs import CogRef
from cog_assets.analysis.table import SyncPlan, build_table, new_row, plan_sync
from cog_assets.analysis.zonal import gdal_options, zonal_statistics
from cog_assets.dataset import DatasetConfig
from cog_assets.defs.aois import AoiFolder
from cog_assets.store.archive import Archive
from cog_assets.store.objects import StorageError, storage_key

AOIS = DynamicPartitionsDefinition(name="aois")
SHOWN_ROWS = 5
IO_THREADS = 8
SHOWN_COLUMNS = ("item_id", "start_datetime", "mean", "min", "max", "valid_pixels", "coverage")


def statistics_key(dataset_id: str) -> AssetKey:
    return AssetKey([dataset_id, "aoi_statistics"])


def table_key(dataset_id: str, aoi_id: str) -> str:
    """Where the IO manager stores an AOI's table (its own scheme: <asset key>/<partition>)."""
    return storage_key(dataset_id, "aoi_statistics", f"{aoi_id}.parquet")


def flatten(cogs: Mapping[str, CogRef | list[CogRef]]) -> list[CogRef]:
    """COG references of every partition (a day of a by-day dataset holds several)."""
    out: list[CogRef] = []
    for value in cogs.values():
        out.extend(value if isinstance(value, list) else [value])
    return out


def compute(
    context: AssetExecutionContext, plans: dict[str, SyncPlan], aois: dict[str, Aoi], version: str, endpoint: str | None
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """New rows per AOI: each COG that any AOI needs is opened once for all of them."""
    by_cog: dict[str, tuple[CogRef, list[Aoi]]] = {}
    for aoi_id, plan in plans.items():
        for cog in plan.todo:
            by_cog.setdefault(cog.uri, (cog, []))[1].append(aois[aoi_id])
    rows: dict[str, list[dict[str, Any]]] = {aoi_id: [] for aoi_id in plans}
    failed: list[str] = []
    now = datetime.now(timezone.utc)
    with rasterio.Env(**gdal_options(endpoint)):
        for n, (cog, wanted) in enumerate(by_cog.values(), 1):
            try:
                with rasterio.open(cog.uri) as source:
                    results = zonal_statistics(source, wanted)
            except (rasterio.RasterioIOError, OSError) as exc:  # this COG only; retried next sync
                failed.append(f"{cog.item_id} ({cog.uri}): {exc}")
                context.log.error(f"could not read COG {cog.uri}: {exc}; its rows are left out until the next sync")
                continue
            for aoi in wanted:
                rows[aoi.id].append(new_row(aoi, cog, results[aoi.id], version, now))
            if n % 200 == 0:
                context.log.info(f"{n}/{len(by_cog)} COGs read")
    return rows, failed


def describe(table: pa.Table, plan: SyncPlan, computed: int, failed: list[str]) -> dict[str, Any]:
    """Materialization metadata: counts, date range, a chart of the mean, the last rows."""
    times = table.column("start_datetime").to_pylist()
    means = table.column("mean").to_pylist()
    dated = [t for t in times if t is not None]
    last = table.slice(max(0, table.num_rows - SHOWN_ROWS)).select(list(SHOWN_COLUMNS)).to_pylist()
    schema = TableSchema(columns=[TableColumn(c, "string" if c in ("item_id", "start_datetime") else "float") for c in SHOWN_COLUMNS])
    return {
        "dagster/row_count": table.num_rows,
        "first_datetime": dated[0].isoformat() if dated else "",
        "last_datetime": dated[-1].isoformat() if dated else "",
        "rows_computed": computed,
        "rows_reused": plan.kept.num_rows,
        "rows_removed": plan.removed,
        "cogs_failed": len(failed),
        "mean_over_time": MetadataValue.md(markdown_image(line_chart_svg(times, means, "mean over the AOI"), "mean over time")),
        "last_rows": MetadataValue.table(
            [TableRecord({k: (str(v) if isinstance(v, datetime) else v) for k, v in r.items()}) for r in last],
            schema=schema,
        ),
    }


def _previous(archive: Archive, dataset_id: str, aoi_id: str) -> pa.Table | None:
    try:
        return pq.read_table(io.BytesIO(archive.storage.get_bytes(table_key(dataset_id, aoi_id))))
    except StorageError:
        return None


def build_aoi_statistics(dataset: DatasetConfig, cog_key: AssetKey) -> AssetsDefinition:
    ds, version = dataset.id, dataset.analysis.version

    @asset(
        key=statistics_key(ds),
        ins={"cogs": AssetIn(key=cog_key, partition_mapping=AllPartitionMapping())},
        partitions_def=AOIS,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=ds,
        kinds={"parquet"},
        description=f"Zonal statistics (exactextract; area-weighted) of every stored {ds} COG over "
        "each AOI: one row per COG. Kept in sync by aoi_sensor; only new or revised COGs are computed.",
    )
    def aoi_statistics(
        context: AssetExecutionContext, cogs: dict, aois: AoiFolder, archive: Archive
    ) -> Any:
        refs = flatten(cogs)
        keys: Sequence[str] = context.partition_keys
        areas = {key: aois.load(key) for key in keys}
        with ThreadPoolExecutor(IO_THREADS) as pool:  # the tables are small: the GETs' latency adds up
            previous = dict(zip(keys, pool.map(lambda key: _previous(archive, ds, key), keys)))
        plans = {key: plan_sync(previous[key], refs, areas[key], version) for key in keys}
        context.log.info(
            f"{len(refs)} stored COGs; to compute: "
            + ", ".join(f"{k} {len(p.todo)} (reused {p.kept.num_rows}, removed {p.removed})" for k, p in plans.items())
        )
        new_rows, failed = compute(context, plans, areas, version, archive.s3_endpoint_url)
        tables = {}
        for key in keys:
            tables[key] = build_table(plans[key].kept, new_rows[key])
            context.add_asset_metadata(describe(tables[key], plans[key], len(new_rows[key]), failed), partition_key=key)
        return tables[keys[0]] if len(keys) == 1 else tables

    return aoi_statistics
