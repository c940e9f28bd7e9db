"""The four assets of a dataset, built from its YAML: granule → cog → stac_item, and the collection.

Per partition (a CMR granule concept-id): ``granule`` fetches the current CMR record and
stages the verified file; ``cog`` converts the configured variable to a validated COG (a
blocking check); ``stac_item`` describes it. ``stac_collection`` is unpartitioned.
"""


import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pystac
from dagster import (
    AssetCheckResult,
    AssetIn,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)

from . import cogs, publishing, stac
from .artifacts import ConvertedCog, StagedGranule
from .catalog import StaticCatalog
from .cmr import CmrClient
from .dataset import DatasetConfig
from .earthdata import EarthdataDownloader
from .io_manager import object_metadata, scratch_dir
from .readers import read_granule
from .stac_api import DuplicateItemError, StacApi, StacApiError

VALID_COG_CHECK = "valid_cog"


@dataclass(frozen=True)
class DatasetAssets:
    partitions_def: DynamicPartitionsDefinition
    granule: AssetsDefinition
    cog: AssetsDefinition
    stac_item: AssetsDefinition
    stac_collection: AssetsDefinition

    @property
    def all(self) -> list[AssetsDefinition]:
        return [self.granule, self.cog, self.stac_item, self.stac_collection]

    @property
    def granule_chain(self) -> list[AssetKey]:
        return [self.granule.key, self.cog.key, self.stac_item.key]


def _workdir() -> Path:
    return Path(tempfile.mkdtemp(dir=scratch_dir()))


def build_dataset_assets(dataset: DatasetConfig) -> DatasetAssets:
    partitions = DynamicPartitionsDefinition(name=dataset.partitions_name)
    ds = dataset.id
    common = {"partitions_def": partitions, "group_name": ds}

    @asset(
        key=[ds, "granule"],
        description=f"The original {dataset.cmr.short_name} granule file, downloaded from its "
        "CMR 'GET DATA' URL with EARTHDATA_TOKEN and verified against CMR's size and checksum.",
        kinds={"hdf5", "s3"},
        **common,
    )
    def granule(
        context: AssetExecutionContext, cmr: CmrClient, earthdata: EarthdataDownloader
    ) -> StagedGranule:
        record = cmr.granule(dataset.cmr, context.partition_key)
        context.log.info(
            f"staging {record.file_name} (revision {record.revision_id}) from {record.data_url}"
        )
        path = earthdata.download(record, _workdir())
        return StagedGranule(record=record, path=path)

    @asset(
        key=[ds, "cog"],
        description=f"{dataset.reader.variable} as a north-up Cloud-Optimized GeoTIFF "
        "(EPSG:4326, deflate + float predictor, 512 blocks, internal overviews).",
        ins={"granule": _in(ds, "granule")},
        check_specs=[
            AssetCheckSpec(
                VALID_COG_CHECK,
                asset=AssetKey([ds, "cog"]),
                blocking=True,
                description="rio-cogeo's validator accepts the file",
            )
        ],
        kinds={"geotiff"},
        **common,
    )
    def cog(context: AssetExecutionContext, granule: StagedGranule) -> Iterator[object]:
        raster = read_granule(granule.path, dataset.reader)
        destination = _workdir() / f"{granule.record.item_id}.tif"
        cogs.write_cog(raster, destination)
        valid, errors, warnings = cogs.validate(destination)
        if not valid:
            destination.unlink(missing_ok=True)
            yield AssetCheckResult(
                check_name=VALID_COG_CHECK,
                passed=False,
                severity=AssetCheckSeverity.ERROR,
                metadata={"errors": MetadataValue.json(errors)},
            )
            raise Failure(
                f"granule {granule.record.concept_id}: the COG written from "
                f"{granule.record.file_name} is not valid ({'; '.join(errors)}); nothing was stored"
            )
        stats = cogs.statistics(raster)
        if stats["valid_pixels"] == 0:
            context.log.warning(
                f"granule {granule.record.concept_id}: every pixel of {dataset.reader.variable} "
                "is fill; the COG is all nodata (valid_fraction 0)"
            )
        yield Output(
            ConvertedCog(record=granule.record, path=destination, stats=stats),
            metadata={**stats, "item_id": granule.record.item_id},
        )
        yield AssetCheckResult(
            check_name=VALID_COG_CHECK,
            passed=True,
            metadata={"warnings": MetadataValue.json(warnings)},
        )

    @asset(
        key=[ds, "stac_item"],
        description="The granule's STAC item (JSON in storage, asset 'cog_default'), upserted to "
        "the STAC API when COG_ASSETS_STAC_API_URL is set, under the dataset's duplicate policy.",
        ins={"cog": _in(ds, "cog")},
        kinds={"stac"},
        **common,
    )
    def stac_item(
        context: AssetExecutionContext,
        cog: ConvertedCog,
        cmr: CmrClient,
        catalog: StaticCatalog,
        stac_api: StacApi,
    ) -> MaterializeResult:
        record = cog.record
        assert cog.uri is not None
        item = stac.build_item(dataset, record, cog.path, cog.uri, cmr.base_url)
        unreachable: StacApiError | None = None
        try:  # before writing: a duplicate policy of 'error' leaves storage untouched
            decision = publishing.plan_item(stac_api, dataset, item.id, record.revision_id)
        except DuplicateItemError:
            raise
        except StacApiError as exc:
            decision, unreachable = None, exc
        stored, payload = catalog.put_item(ds, item)
        if unreachable is not None:  # stored, so the republish job or a retry delivers it
            raise unreachable
        published = (
            publishing.publish_item(stac_api, dataset, payload, decision)
            if decision is not None
            else "not configured"
        )
        return MaterializeResult(
            metadata={
                **object_metadata(stored),
                "item_id": item.id,
                "datetime": pystac.utils.datetime_to_str(item.datetime) if item.datetime else "",
                "cmr_revision_id": record.revision_id,
                "stac_api": published,
                "stac_api_reason": decision.reason if decision else "COG_ASSETS_STAC_API_URL is not set",
            }
        )

    @asset(
        key=[ds, "stac_collection"],
        description="The dataset's STAC collection: collection.json (linking every stored item) "
        "and the root catalog.json in storage, created or updated in the STAC API if configured.",
        group_name=ds,
        kinds={"stac"},
    )
    def stac_collection(catalog: StaticCatalog, stac_api: StacApi) -> MaterializeResult:
        collection = stac.build_collection(dataset)
        stored, links = catalog.put_collection(ds, collection)
        published = "not configured"
        if stac_api.enabled:
            published = stac_api.upsert_collection(publishing.collection_payload(dataset), keep_extent=True)
        return MaterializeResult(metadata={**object_metadata(stored), "item_links": links, "stac_api": published})

    return DatasetAssets(partitions, granule, cog, stac_item, stac_collection)


def _in(dataset_id: str, name: str) -> AssetIn:
    return AssetIn(key=AssetKey([dataset_id, name]))
