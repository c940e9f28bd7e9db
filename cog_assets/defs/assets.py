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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
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
    Failure,
    MaterializeResult,
    MetadataValue,
    PartitionsDefinition,
    asset,
    multi_asset,
)

from cog_assets.dataset import DatasetConfig
from cog_assets.defs.partitions import build_partitions_def, day_of, day_window
from cog_assets.processing import chain
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.sources.earthdata import EarthdataDownloader
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
    partitions_def: PartitionsDefinition
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
        if dataset.by_day:
            summary = (
                f"{len(self.failed_partitions)} of {partitions} days failed ({len(self.failures)} "
                "problems); the other days are materialized, and the failed days' good granules "
                "are stored and will be skipped when the day is re-run. Fix the cause, then re-run "
                "the failed days"
            )
        else:
            summary = (
                f"{len(self.failures)} of {partitions} granules failed; the others are "
                "materialized. Fix the cause, then re-run the failed partitions"
            )
        return Failure(
            description=f"{summary}:\n{shown}",
            metadata={"failed_partitions": MetadataValue.json(self.failed_partitions)},
        )


def _run_granules(
    context: AssetExecutionContext,
    svc: chain.Services,
    keys: dict[str, AssetKey],
    steps: set[str],
    scratch: Path,
    tally: _Tally,
) -> Iterator[AssetMaterialization]:
    """Partitions are granules: each materializes, or fails, on its own."""
    partition_keys = context.partition_keys
    found = svc.cmr.granules(svc.dataset.cmr, list(partition_keys)) if "granule" in steps else {}
    for n, key in enumerate(partition_keys, 1):
        outcome = chain.process(svc, key, found.get(key), steps, scratch)
        for done in outcome.done:
            yield AssetMaterialization(
                asset_key=keys[done.step], partition=key, metadata=object_metadata(done.metadata)
            )
        tally.add(outcome)
        if outcome.error:
            tally.fail_partition(key)
        if n % 10 == 0 or n == len(partition_keys):
            context.log.info(f"{n}/{len(partition_keys)} granules done, {len(tally.failures)} failed")


def _run_days(
    context: AssetExecutionContext,
    svc: chain.Services,
    keys: dict[str, AssetKey],
    steps: set[str],
    scratch: Path,
    tally: _Tally,
) -> Iterator[AssetMaterialization]:
    """Partitions are UTC days: every granule CMR lists for a day is processed one at a time;
    the day materializes when all of them are done, and a re-run skips those already current
    (unless only some steps are selected, or the run is tagged cog_assets/reprocess=true)."""
    dataset = svc.dataset
    days = list(context.partition_keys)
    skip_current = steps == set(chain.STEPS) and context.run.tags.get(REPROCESS_TAG) != "true"
    start, end = day_window(min(days))[0], day_window(max(days))[1]
    records, rejected = svc.cmr.granules_between(dataset.cmr, start, end - timedelta(milliseconds=1))
    for problem in rejected:
        context.log.warning(f"skipped an unusable CMR record: {problem}")
    by_day: dict[str, list[GranuleRecord]] = {day: [] for day in days}
    for record in sorted(records, key=lambda r: (r.begin or r.end or start, r.concept_id)):
        if (day := day_of(record)) in by_day:
            by_day[day].append(record)
    expected = dataset.partitioning.granules_per_day
    for day in days:
        if not by_day[day]:
            tally.fail_partition(
                day,
                f"day {day}: CMR lists no {dataset.cmr.short_name} v{dataset.cmr.version} "
                f"({dataset.cmr.provider}) granule beginning that day; nothing was written. If "
                "the day is not published yet, re-run it later",
            )
            continue
        results = []
        for record in by_day[day]:
            outcome = chain.process(svc, record.concept_id, record, steps, scratch, skip_current)
            tally.add(outcome)
            results.append((record, outcome))
        manifest = chain.write_day_manifest(svc, day, results)
        counts = Counter(outcome.status for _, outcome in results)
        context.log.info(
            f"day {day}: {counts['processed']} granules processed, {counts['current']} already "
            f"current, {counts['failed']} failed ({len(results)} in CMR, {expected} expected)"
        )
        if counts["failed"]:
            tally.fail_partition(day)
            continue
        for step in chain.STEPS:
            if step not in steps:
                continue
            written = [d.metadata for _, o in results for d in o.done if d.step == step]
            yield AssetMaterialization(
                asset_key=keys[step],
                partition=day,
                metadata=object_metadata(
                    {
                        **chain.stored_metadata(manifest),
                        "granules": len(results),
                        "granules_expected": expected,
                        "granules_processed": counts["processed"],
                        "granules_already_current": counts["current"],
                        "bytes_written": sum(m.get("size_bytes", 0) for m in written),
                    }
                ),
            )


def build_dataset_assets(dataset: DatasetConfig) -> DatasetAssets:
    partitions = build_partitions_def(dataset)
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
    ) -> Iterator[Any]:
        steps = {key.path[-1] for key in context.selected_asset_keys}
        services = chain.Services(dataset, cmr, earthdata, archive, stac_api)
        tally = _Tally(context)
        scratch = Path(tempfile.mkdtemp(prefix=f"cog_assets-{ds}-"))
        try:
            run = _run_days if dataset.by_day else _run_granules
            yield from run(context, services, keys, steps, scratch, tally)
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

    return DatasetAssets(partitions, granule_chain, stac_collection)
