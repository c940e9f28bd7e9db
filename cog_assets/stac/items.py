"""STAC items and collections built with pystac from CMR records and the dataset file.

Item conventions (DESIGN.md): id = granule file name without extension; datetime,
start_datetime and end_datetime from CMR's temporal extent (never "now"); ``updated`` is the
CMR revision date, so a rerun of the same revision yields the same item; asset
``cog_default`` is the COG with the projection, raster and file extensions.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pystac
import rasterio
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics

from cog_assets.dataset import DatasetConfig
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.stac import footprint
from cog_assets.stac import catalog
from cog_assets.store.layout import COG_MEDIA_TYPE
from cog_assets.store.objects import sha256_of

COG_ASSET = "cog_default"


def _multihash_sha256(hex_digest: str) -> str:
    return "1220" + hex_digest


def granule_footprint(record: GranuleRecord, cog_bounds: footprint.Bbox) -> footprint.Footprint:
    """CMR's footprint of the granule; the COG's bounds when CMR gives none."""
    return record.footprint() or footprint.from_bbox(cog_bounds)


def build_item(
    dataset: DatasetConfig,
    record: GranuleRecord,
    cog_path: Path,
    cog_uri: str,
    cmr_url: str,
) -> pystac.Item:
    """The granule's item, its ``cog_default`` asset pointing at the stored COG."""
    with rasterio.open(cog_path) as cog:
        bounds = tuple(cog.bounds)
        shape = [cog.height, cog.width]
        transform = list(cog.transform)[:6]
        nodata = cog.nodata
        band = cog.read(1, masked=True)
    extent = granule_footprint(record, bounds)  # type: ignore[arg-type]
    if record.begin is None:
        raise ValueError(f"granule {record.concept_id} has no temporal extent in CMR")
    item = pystac.Item(
        id=record.item_id,
        geometry=extent.geometry,
        bbox=list(extent.bbox),
        datetime=record.begin,
        start_datetime=record.begin,
        end_datetime=record.end or record.begin,
        properties={
            "cmr:concept_id": record.concept_id,
            "cmr:revision_id": record.revision_id,
            "cmr:revision_date": record.revision_date,
            "cmr:granule_ur": record.granule_ur,
        },
        collection=dataset.id,
    )
    item.common_metadata.updated = datetime.fromisoformat(record.revision_date.replace("Z", "+00:00"))
    asset = pystac.Asset(
        href=cog_uri,
        media_type=COG_MEDIA_TYPE,
        roles=["data"],
        title=f"{dataset.reader.variable.rsplit('/', 1)[-1]} ({dataset.reader.units or 'unitless'})",
    )
    item.add_asset(COG_ASSET, asset)

    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.code = "EPSG:4326"
    proj_asset = ProjectionExtension.ext(asset)
    proj_asset.shape = shape
    proj_asset.transform = transform
    proj_asset.bbox = list(bounds)

    stats = None
    if band.count():
        stats = Statistics.create(
            minimum=float(band.min()),
            maximum=float(band.max()),
            mean=float(band.mean()),
            valid_percent=round(100.0 * band.count() / band.size, 4),
        )
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(
            nodata=nodata,
            data_type=DataType.FLOAT32,
            unit=dataset.reader.units,
            statistics=stats,
        )
    ]
    file_ext = FileExtension.ext(asset, add_if_missing=True)
    file_ext.size = cog_path.stat().st_size
    file_ext.checksum = _multihash_sha256(sha256_of(cog_path))

    item.add_link(
        pystac.Link(
            rel="via",
            target=f"{cmr_url.rstrip('/')}/search/concepts/{record.concept_id}.umm_json",
            media_type="application/json",
            title="CMR granule record",
        )
    )
    if record.data_url:
        item.add_link(pystac.Link(rel="derived_from", target=record.data_url, title="source granule"))
    return item


def build_collection(dataset: DatasetConfig) -> pystac.Collection:
    """The collection from the dataset file (extent from the CMR query)."""
    bbox = list(dataset.cmr.bounding_box or (-180.0, -90.0, 180.0, 90.0))
    collection = pystac.Collection(
        id=dataset.id,
        title=dataset.stac.title,
        description=dataset.stac.description,
        license=dataset.stac.license,
        keywords=dataset.stac.keywords,
        providers=[
            pystac.Provider(name=p.name, roles=list(p.roles), url=p.url)  # type: ignore[arg-type]
            for p in dataset.stac.providers
        ],
        extent=pystac.Extent(
            spatial=pystac.SpatialExtent([bbox]),
            temporal=pystac.TemporalExtent([[dataset.cmr.temporal_start, dataset.cmr.temporal_end]]),
        ),
        extra_fields={
            "cmr:short_name": dataset.cmr.short_name,
            "cmr:version": dataset.cmr.version,
            "cmr:provider": dataset.cmr.provider,
        },
    )
    collection.item_assets = {
        COG_ASSET: pystac.ItemAssetDefinition.create(
            title=dataset.reader.variable.rsplit("/", 1)[-1],
            description=None,
            media_type=COG_MEDIA_TYPE,
            roles=["data"],
        )
    }
    return collection


def item_for_catalog(item: pystac.Item) -> dict[str, Any]:
    """Item JSON for the static catalog: relative links to its collection and the root."""
    payload = item.to_dict(include_self_link=False, transform_hrefs=False)
    payload["links"] = [
        link for link in payload.get("links", []) if link["rel"] not in {"root", "parent", "collection", "self"}
    ] + catalog.item_links()
    return payload


def root_catalog(collection_ids: list[str]) -> dict[str, Any]:
    catalog = pystac.Catalog(
        id="cog_assets",
        description="Cloud-Optimized GeoTIFFs made from NASA Earth-observation granules by cog_assets",
        title="cog_assets",
    )
    payload = catalog.to_dict(include_self_link=False, transform_hrefs=False)
    payload["links"] = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}] + [
        {"rel": "child", "href": f"./{cid}/collection.json", "type": "application/json"}
        for cid in collection_ids
    ]
    return payload


_STRUCTURAL_RELS = {"root", "parent", "collection", "self", "item", "child", "items"}


def for_api(payload: dict[str, Any]) -> dict[str, Any]:
    """Item or collection JSON for a STAC API: the API makes its own structural links."""
    return {
        **payload,
        "links": [link for link in payload.get("links", []) if link["rel"] not in _STRUCTURAL_RELS],
    }
