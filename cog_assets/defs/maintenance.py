"""Per-dataset upkeep of the STAC API: a reconciliation check and a republish job.

``<dataset>/stac_collection`` carries the check ``in_sync_with_stac_api`` (run it from the
asset's Checks tab): which stored items the API lacks and which API items storage lacks.
``<dataset>_stac_republish`` makes the API match storage (disaster recovery: it rebuilds an
empty API from storage).
"""

from datetime import datetime, timedelta

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    Config,
    DagsterInstance,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    asset_check,
    job,
    op,
)
from dagster_aws.s3 import S3Resource

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.assets import STAC_API_POOL
from cog_assets.defs.discovery import sensor_name
from cog_assets.processing import invariant
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.harvest import HarvestCursor
from cog_assets.sources.s3.discover import ListingCursor
from cog_assets.sources.source import source_for
from cog_assets.stac import publishing
from cog_assets.stac.api import StacApi
from cog_assets.store.archive import Archive

IN_SYNC_CHECK = "in_sync_with_stac_api"
INVARIANT_CHECK = "in_step_with_cmr"
SOURCE_INVARIANT_CHECK = "in_step_with_source"  # datasets whose source is not CMR


class RepublishConfig(Config):
    only_missing: bool = True
    """Publish only the stored items the API lacks (False: upsert every stored item)."""
    prune: bool = False
    """Also delete API items that storage does not hold."""


def _sensor_started(instance: DagsterInstance, dataset: DatasetConfig) -> datetime | None:
    """When the dataset's sensor was first switched on (its cursor), if it ever ticked."""
    name = sensor_name(dataset)
    cursor_type = HarvestCursor if dataset.source.kind == "cmr" else ListingCursor
    try:
        states = instance.all_instigator_state()
    except Exception:  # noqa: BLE001 (dagster's CheckError is private) an instance without schedule storage (ephemeral) has no sensor state
        return None
    for state in states:
        cursor = getattr(state.instigator_data, "cursor", None)
        if state.instigator_name == name and cursor:
            return cursor_type.from_json(cursor).started
    return None


def invariant_check_name(dataset: DatasetConfig) -> str:
    return INVARIANT_CHECK if dataset.source.kind == "cmr" else SOURCE_INVARIANT_CHECK


def build_invariant_check(dataset: DatasetConfig, collection_key: AssetKey) -> AssetChecksDefinition:
    where = "CMR" if dataset.source.kind == "cmr" else "the source prefix"

    @asset_check(
        asset=collection_key,
        name=invariant_check_name(dataset),
        description=f"The promise: the live granules in {where} = the granules with a stored item = "
        "the items in the STAC API; one item per granule; each item's checksum matches its "
        "COG; nothing of a superseded or deleted revision left. Reads every stored item and "
        f"lists {where}; hashes {invariant.SAMPLE} COGs at random.",
        blocking=False,
    )
    def in_step(context: AssetCheckExecutionContext, cmr: CmrClient, archive: Archive, stac_api: StacApi,
                s3: S3Resource) -> AssetCheckResult:
        grace = invariant.GRACE + 3 * timedelta(seconds=dataset.sensor.minimum_interval_seconds)
        started = _sensor_started(context.instance, dataset)
        report = invariant.check(source_for(dataset, cmr, None, s3), archive, stac_api, dataset,
                                 published_since=started, grace=grace)
        return AssetCheckResult(
            passed=report.holds,
            severity=AssetCheckSeverity.ERROR,
            description=report.summary(),
            metadata={k: MetadataValue.json(v) if isinstance(v, (list, dict)) else v for k, v in report.metadata().items()},
        )

    return in_step


def build_reconciliation_check(dataset: DatasetConfig, collection_key: AssetKey) -> AssetChecksDefinition:
    @asset_check(
        asset=collection_key,
        name=IN_SYNC_CHECK,
        description="Storage's static catalog and the STAC API hold the same items, and the API "
        "collection's extent covers them (passes trivially when no STAC API is configured).",
        blocking=False,
    )
    def in_sync(archive: Archive, stac_api: StacApi) -> AssetCheckResult:
        if not stac_api.enabled:
            return AssetCheckResult(passed=True, metadata={"stac_api": "not configured"})
        report = publishing.reconcile(archive, stac_api, dataset)
        return AssetCheckResult(
            passed=report.in_sync,
            severity=AssetCheckSeverity.WARN,
            description=report.summary(),
            metadata={k: MetadataValue.json(v) if isinstance(v, list) else v for k, v in report.metadata().items()},
        )

    return in_sync


def build_republish_job(dataset: DatasetConfig) -> JobDefinition:
    @op(
        name=f"{dataset.id}_republish_items",
        description="Publish storage's STAC items to the STAC API.",
        pool=STAC_API_POOL,
    )
    def republish_items(
        context: OpExecutionContext, config: RepublishConfig, archive: Archive, stac_api: StacApi
    ) -> None:
        if not stac_api.enabled:
            raise ValueError("no STAC API is configured: set COG_ASSETS_STAC_API_URL to republish")
        result = publishing.republish(
            archive, stac_api, dataset, config.only_missing, config.prune, log=context.log.info
        )
        context.log.info(
            f"{dataset.id}: {result.published} items published, {result.unchanged} already there, "
            f"{result.pruned} pruned"
        )
        report = publishing.reconcile(archive, stac_api, dataset)
        context.log.info(report.summary())
        if report.missing_in_api:
            raise RuntimeError(f"{dataset.id}: after republishing, {report.summary()}")

    @job(
        name=f"{dataset.id}_stac_republish",
        description=f"Make the STAC API's {dataset.id} collection match storage (disaster recovery).",
    )
    def republish_job() -> None:
        republish_items()

    return republish_job
