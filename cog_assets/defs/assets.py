"""The four assets of a dataset, built from its YAML: granule → cog → stac_item, and the collection.

``granule``, ``cog`` and ``stac_item`` are partitioned by CMR granule concept-id (or by UTC day,
see ``partitions``) and computed by one step (a multi-asset) that works through its run's
granules, several at once (``granule_runs``): a backfill runs ranges of about
``backfill.granules_per_run`` granules per run, so Dagster's per-run cost is paid once per
range, yet each granule (or day) materializes, or fails with its cause, on its own; a failed
one can be retried alone. ``stac_collection`` is unpartitioned.
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
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
    multi_asset,
)
from dagster_aws.s3 import S3Resource

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.granule_runs import (
    ChainRunConfig,
    EventClock,
    object_metadata,
    report_failed_partitions,
    run_partitions,
)
from cog_assets.defs.partitions import PartitionStrategy, strategy_for
from cog_assets.processing import chain
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.earthdata import EarthdataDownloader
from cog_assets.sources.source import granule_description
from cog_assets.stac import items as stac
from cog_assets.stac import publishing
from cog_assets.stac.api import StacApi
from cog_assets.store.archive import Archive

VALID_COG_CHECK = "valid_cog"
DOWNLOADS_POOL = "earthdata"
STAC_API_POOL = "stac_api"
_SHOWN_FAILURES = 20


@dataclass(frozen=True)
class DatasetAssets:
    strategy: PartitionStrategy
    chain: AssetsDefinition
    stac_collection: AssetsDefinition

    @property
    def partitions_def(self) -> PartitionsDefinition:
        return self.strategy.partitions_def

    @property
    def all(self) -> list[AssetsDefinition]:
        return [self.chain, self.stac_collection]

    @property
    def granule_chain(self) -> list[AssetKey]:
        """granule, cog, stac_item: the partitioned assets, in order."""
        by_step = {key.path[-1]: key for key in self.chain.keys}
        return [by_step[step] for step in chain.STEPS]


class _Tally:
    """What a run's granules did: failures (with causes), COG validation, progress."""

    def __init__(self, context: AssetExecutionContext) -> None:
        self.log = context.log
        self.failures: list[str] = []
        self.failed_partitions: list[str] = []
        self.invalid: dict[str, list[str]] = {}
        self.validated = 0

    def add(self, outcome: chain.GranuleOutcome) -> None:
        for warning in outcome.warnings:
            self.log.warning(warning)
        if outcome.cog_errors is not None:
            self.validated += 1
            if outcome.cog_errors:
                self.invalid[outcome.concept_id] = outcome.cog_errors
        if outcome.error:
            self.failures.append(outcome.error)
            self.log.error(outcome.error)

    def fail_partition(self, key: str, cause: str | None = None) -> None:
        self.failed_partitions.append(key)
        if cause:
            self.failures.append(cause)
            self.log.error(cause)

    def failure(self, dataset: DatasetConfig, partitions: int) -> Failure:
        shown = "\n".join(self.failures[:_SHOWN_FAILURES])
        if len(self.failures) > _SHOWN_FAILURES:
            shown += f"\n… and {len(self.failures) - _SHOWN_FAILURES} more"
        failed = len(self.failed_partitions)
        done = partitions - failed
        unit = "days" if dataset.by_day else "granules"
        summary = f"{failed} of {partitions} {unit} failed, {done} materialized"
        if dataset.by_day:
            summary += (
                f" ({len(self.failures)} granule problems; the failed days' good granules are stored "
                "and are skipped when the day is re-run). Fix the cause, then re-run the failed days"
            )
        else:
            summary += ". Fix the cause, then re-run the failed partitions"
        return Failure(
            description=f"{summary}:\n{shown}",
            metadata={"failed_partitions": MetadataValue.json(self.failed_partitions)},
        )


def _chain_specs(dataset: DatasetConfig, keys: dict[str, AssetKey]) -> list[AssetSpec]:
    """The three assets one step computes, as the UI describes them."""
    return [
        AssetSpec(
            keys["granule"],
            description=granule_description(dataset),
            kinds={"geotiff" if dataset.reader.format == "geotiff" else "hdf5"},
            skippable=True,
        ),
        AssetSpec(
            keys["cog"],
            description=f"{dataset.reader.variable or dataset.reader.title} as a north-up Cloud-Optimized GeoTIFF "
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
    ]


def _chain_checks(keys: dict[str, AssetKey]) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            VALID_COG_CHECK,
            asset=keys["cog"],
            description="rio-cogeo's validator accepts every COG the run wrote; evaluated "
            "once per run (cogs_validated, cogs_invalid). Blocking: an invalid COG is never "
            "stored (its granule fails) and assets downstream of cog in the run do not run",
            blocking=True,
        )
    ]


def build_dataset_assets(dataset: DatasetConfig) -> DatasetAssets:
    strategy = strategy_for(dataset)
    partitions = strategy.partitions_def
    ds = dataset.id
    keys = {step: AssetKey([ds, step]) for step in chain.STEPS}
    check_key = AssetCheckKey(keys["cog"], VALID_COG_CHECK)

    @multi_asset(
        name=f"{ds}_granule_chain",
        specs=_chain_specs(dataset, keys),
        check_specs=_chain_checks(keys),
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=dataset.partitions_per_run),
        can_subset=True,
        group_name=ds,
        pool=DOWNLOADS_POOL,
    )
    def granule_chain(
        context: AssetExecutionContext,
        config: ChainRunConfig,
        cmr: CmrClient,
        earthdata: EarthdataDownloader,
        archive: Archive,
        stac_api: StacApi,
        s3: S3Resource,
    ) -> Iterator[Any]:
        services = chain.Services(dataset, cmr, earthdata, archive, stac_api, s3=s3)
        tally = _Tally(context)
        scratch = Path(tempfile.mkdtemp(prefix=f"cog_assets-{ds}-"))
        try:
            yield from run_partitions(context, services, strategy, keys, scratch, tally, config, EventClock())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if check_key in context.selected_asset_check_keys:
            yield AssetCheckResult(
                asset_key=keys["cog"],
                check_name=VALID_COG_CHECK,
                passed=not tally.invalid,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "cogs_validated": tally.validated,
                    "cogs_invalid": len(tally.invalid),
                    "invalid": MetadataValue.json(tally.invalid),
                },
            )
        if tally.failures:
            selected = [keys[step] for step in chain.STEPS if keys[step] in context.selected_asset_keys]
            report_failed_partitions(context, selected, tally.failed_partitions)
            raise tally.failure(dataset, len(context.partition_keys))

    return DatasetAssets(strategy, granule_chain, build_collection_asset(dataset))


def build_collection_asset(dataset: DatasetConfig) -> AssetsDefinition:
    """``<dataset>/stac_collection``: the collection in storage (and the API, if configured)."""
    ds = dataset.id

    @asset(
        key=[ds, "stac_collection"],
        description="The dataset's STAC collection: collection.json (linking every stored item) "
        "and the root catalog.json in storage, created or updated in the STAC API if configured.",
        group_name=ds,
        kinds={"stac"},
        pool=STAC_API_POOL,
    )
    def stac_collection(archive: Archive, stac_api: StacApi) -> MaterializeResult:
        collection = stac.build_collection(dataset)
        stored, links = archive.put_collection(ds, collection)
        published = "not configured"
        if stac_api.enabled:
            published = stac_api.upsert_collection(publishing.collection_payload(dataset), keep_extent=True)
        return MaterializeResult(
            metadata={**object_metadata(chain.stored_metadata(stored)), "item_links": links, "stac_api": published}
        )

    return stac_collection
