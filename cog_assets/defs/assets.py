"""The four assets of a dataset, built from its YAML: granule → cog → stac_item, and the collection.

``granule``, ``cog`` and ``stac_item`` are partitioned by CMR granule concept-id (or by UTC day,
see ``partitions``) and computed by one step (a multi-asset) that works through its run's
granules one at a time (``chain.process``): a backfill runs ranges of about
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
    AssetMaterialization,
    AssetObservation,
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
REPROCESS_TAG = "cog_assets/reprocess"
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


_LINKS = {"uri", "thumbnail", "cmr_record", "stac_api_item"}


def object_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Dagster metadata from a step's plain dict: links where a browser can follow them (http;
    ``file://`` and ``s3://`` URIs stay text to copy), the preview as an inline image, JSON for
    lists."""
    shown: dict[str, Any] = {}
    for key, value in metadata.items():
        text = str(value)
        if key == "preview":
            shown[key] = MetadataValue.md(f"![preview of the COG]({text})")
        elif key in _LINKS and text.startswith(("http://", "https://")):
            shown[key] = MetadataValue.url(text)
        elif isinstance(value, (list, dict)):
            shown[key] = MetadataValue.json(value)
        elif value is not None:
            shown[key] = value
    return shown


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


def _failure_observations(
    keys: dict[str, AssetKey], steps: set[str], partition: str, results: list, run_id: str
) -> Iterator[AssetObservation]:
    """The cause on the failed partition's own page (its events), not only in the run's log."""
    causes = [outcome.error for _, outcome in results if outcome.error]
    for step in sorted(steps):
        yield AssetObservation(
            asset_key=keys[step],
            partition=partition,
            description="failed: " + "; ".join(causes)[:2000],
            metadata={"status": "failed", "cause": MetadataValue.md("\n\n".join(f"- {c}" for c in causes[:_SHOWN_FAILURES])),
                      "run": MetadataValue.text(run_id)},
        )


def _run(
    context: AssetExecutionContext,
    svc: chain.Services,
    strategy: PartitionStrategy,
    keys: dict[str, AssetKey],
    scratch: Path,
    tally: _Tally,
) -> Iterator[AssetMaterialization]:
    """Work through the run's partitions one granule at a time; each partition materializes,
    or fails with its causes, on its own."""
    steps = {key.path[-1] for key in context.selected_asset_keys}
    skip_current = strategy.skips_current(steps, context.run.tags.get(REPROCESS_TAG) == "true")
    works = strategy.work(svc, list(context.partition_keys), "granule" in steps, context.log.warning)
    for n, work in enumerate(works, 1):
        if not work.granules:  # a day CMR lists nothing for
            tally.fail_partition(
                work.key,
                f"day {work.key}: CMR lists no {svc.dataset.query.short_name} v{svc.dataset.query.version} "
                f"({svc.dataset.query.provider}) granule beginning that day; nothing was written. If "
                "the day is not published yet, re-run it later",
            )
            continue
        results = []
        for concept_id, found in work.granules:
            outcome = chain.process(svc, concept_id, found, steps, scratch, skip_current)
            tally.add(outcome)
            results.append((concept_id, outcome))
        done = strategy.materialize(svc, work.key, results, steps, context.log.info)
        if done is None:
            tally.fail_partition(work.key)
            yield from _failure_observations(keys, steps, work.key, results, context.run.run_id)
        else:
            for step, metadata in done.items():
                yield AssetMaterialization(asset_key=keys[step], partition=work.key, metadata=object_metadata(metadata))
        if n % 10 == 0 or n == len(works):
            context.log.info(f"{n}/{len(works)} partitions done, {len(tally.failed_partitions)} failed")


def build_dataset_assets(dataset: DatasetConfig) -> DatasetAssets:
    strategy = strategy_for(dataset)
    partitions = strategy.partitions_def
    ds = dataset.id
    keys = {step: AssetKey([ds, step]) for step in chain.STEPS}
    check_key = AssetCheckKey(keys["cog"], VALID_COG_CHECK)

    @multi_asset(
        name=f"{ds}_granule_chain",
        specs=[
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
        ],
        check_specs=[
            AssetCheckSpec(
                VALID_COG_CHECK,
                asset=keys["cog"],
                description="rio-cogeo's validator accepts every COG the run wrote; evaluated "
                "once per run (cogs_validated, cogs_invalid). Blocking: an invalid COG is never "
                "stored (its granule fails) and assets downstream of cog in the run do not run",
                blocking=True,
            )
        ],
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=dataset.partitions_per_run),
        can_subset=True,
        group_name=ds,
        pool=DOWNLOADS_POOL,
    )
    def granule_chain(
        context: AssetExecutionContext,
        cmr: CmrClient,
        earthdata: EarthdataDownloader,
        archive: Archive,
        stac_api: StacApi,
        s3: S3Resource,
    ) -> Iterator[Any]:
        services = chain.Services(dataset, cmr, earthdata, archive, stac_api, s3)
        tally = _Tally(context)
        scratch = Path(tempfile.mkdtemp(prefix=f"cog_assets-{ds}-"))
        try:
            yield from _run(context, services, strategy, keys, scratch, tally)
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
            raise tally.failure(dataset, len(context.partition_keys))

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

    return DatasetAssets(strategy, granule_chain, stac_collection)
