"""The four assets of a dataset, built from its YAML: granule → cog → stac_item, and the collection.

``granule``, ``cog`` and ``stac_item`` are partitioned by CMR granule concept-id and computed by
one step (a multi-asset) that works through its run's partitions one granule at a time
(``chain.process``): a backfill runs ranges of ``backfill.granules_per_run`` granules per run,
so Dagster's per-run cost is paid once per range, yet each granule materializes, or fails with
its cause, on its own; a failed one can be retried alone. ``stac_collection`` is unpartitioned.
"""

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from . import chain, publishing, stac
from .catalog import StaticCatalog
from .cmr import CmrClient
from .dataset import DatasetConfig
from .earthdata import EarthdataDownloader
from .stac_api import StacApi

VALID_COG_CHECK = "valid_cog"
DOWNLOADS_POOL = "earthdata"
STAC_API_POOL = "stac_api"
_SHOWN_FAILURES = 20


@dataclass(frozen=True)
class DatasetAssets:
    partitions_def: DynamicPartitionsDefinition
    chain: AssetsDefinition
    stac_collection: AssetsDefinition

    @property
    def all(self) -> list[AssetsDefinition]:
        return [self.chain, self.stac_collection]

    @property
    def granule_chain(self) -> list[AssetKey]:
        """granule, cog, stac_item: the partitioned assets, in order."""
        by_step = {key.path[-1]: key for key in self.chain.keys}
        return [by_step[step] for step in chain.STEPS]


def object_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Dagster metadata from a step's plain dict (links for http URIs, JSON for lists)."""
    shown: dict[str, Any] = {}
    for key, value in metadata.items():
        if key == "uri" and str(value).startswith("http"):
            shown[key] = MetadataValue.url(value)
        elif isinstance(value, (list, dict)):
            shown[key] = MetadataValue.json(value)
        else:
            shown[key] = value
    return shown


def build_dataset_assets(dataset: DatasetConfig) -> DatasetAssets:
    partitions = DynamicPartitionsDefinition(name=dataset.partitions_name)
    ds = dataset.id
    keys = {step: AssetKey([ds, step]) for step in chain.STEPS}
    check_key = AssetCheckKey(keys["cog"], VALID_COG_CHECK)

    @multi_asset(
        name=f"{ds}_granule_chain",
        specs=[
            AssetSpec(
                keys["granule"],
                description=f"The original {dataset.cmr.short_name} granule file, downloaded from "
                "its CMR 'GET DATA' URL with EARTHDATA_TOKEN and verified against CMR's size and "
                "checksum.",
                kinds={"hdf5"},
                skippable=True,
            ),
            AssetSpec(
                keys["cog"],
                description=f"{dataset.reader.variable} as a north-up Cloud-Optimized GeoTIFF "
                "(EPSG:4326, deflate + float predictor, 512 blocks, internal overviews).",
                deps=[keys["granule"]],
                kinds={"geotiff"},
                skippable=True,
            ),
            AssetSpec(
                keys["stac_item"],
                description="The granule's STAC item (JSON in storage, asset 'cog_default'), "
                "upserted to the STAC API when COG_ASSETS_STAC_API_URL is set, under the "
                "dataset's duplicate policy.",
                deps=[keys["cog"]],
                kinds={"stac"},
                skippable=True,
            ),
        ],
        check_specs=[
            AssetCheckSpec(
                VALID_COG_CHECK,
                asset=keys["cog"],
                description="rio-cogeo's validator accepts every COG the run wrote (an invalid "
                "COG is never stored: its granule fails)",
            )
        ],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=dataset.backfill.granules_per_run),
        can_subset=True,
        group_name=ds,
        pool=DOWNLOADS_POOL,
    )
    def granule_chain(
        context: AssetExecutionContext,
        cmr: CmrClient,
        earthdata: EarthdataDownloader,
        catalog: StaticCatalog,
        stac_api: StacApi,
    ) -> Iterator[Any]:
        steps = {key.path[-1] for key in context.selected_asset_keys}
        partition_keys = context.partition_keys
        services = chain.Services(dataset, cmr, earthdata, catalog, stac_api)
        found = cmr.granules(dataset.cmr, list(partition_keys)) if "granule" in steps else {}
        scratch = Path(tempfile.mkdtemp(prefix=f"cog_assets-{ds}-"))
        failures: list[str] = []
        invalid: dict[str, list[str]] = {}
        validated = 0
        try:
            for n, key in enumerate(partition_keys, 1):
                outcome = chain.process(services, key, found.get(key), steps, scratch)
                for done in outcome.done:
                    yield AssetMaterialization(
                        asset_key=keys[done.step], partition=key, metadata=object_metadata(done.metadata)
                    )
                for warning in outcome.warnings:
                    context.log.warning(warning)
                if outcome.cog_errors is not None:
                    validated += 1
                    if outcome.cog_errors:
                        invalid[key] = outcome.cog_errors
                if outcome.error:
                    failures.append(outcome.error)
                    context.log.error(outcome.error)
                if n % 10 == 0 or n == len(partition_keys):
                    context.log.info(f"{n}/{len(partition_keys)} granules done, {len(failures)} failed")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if check_key in context.selected_asset_check_keys:
            yield AssetCheckResult(
                asset_key=keys["cog"],
                check_name=VALID_COG_CHECK,
                passed=not invalid,
                severity=AssetCheckSeverity.ERROR,
                metadata={"cogs_validated": validated, "invalid": MetadataValue.json(invalid)},
            )
        if failures:
            shown = "\n".join(failures[:_SHOWN_FAILURES])
            more = f"\n… and {len(failures) - _SHOWN_FAILURES} more" if len(failures) > _SHOWN_FAILURES else ""
            raise Failure(
                description=f"{len(failures)} of {len(partition_keys)} granules failed; the others "
                f"are materialized. Fix the cause, then re-run the failed partitions:\n{shown}{more}",
                metadata={"failed_granules": MetadataValue.json([f.split(":", 1)[0] for f in failures])},
            )

    @asset(
        key=[ds, "stac_collection"],
        description="The dataset's STAC collection: collection.json (linking every stored item) "
        "and the root catalog.json in storage, created or updated in the STAC API if configured.",
        group_name=ds,
        kinds={"stac"},
        pool=STAC_API_POOL,
    )
    def stac_collection(catalog: StaticCatalog, stac_api: StacApi) -> MaterializeResult:
        collection = stac.build_collection(dataset)
        stored, links = catalog.put_collection(ds, collection)
        published = "not configured"
        if stac_api.enabled:
            published = stac_api.upsert_collection(publishing.collection_payload(dataset), keep_extent=True)
        return MaterializeResult(
            metadata={**object_metadata(chain.stored_metadata(stored)), "item_links": links, "stac_api": published}
        )

    return DatasetAssets(partitions, granule_chain, stac_collection)
