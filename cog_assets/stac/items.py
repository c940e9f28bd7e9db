"""STAC items and collections built with pystac from granule records and the dataset file.

Item conventions (DESIGN.md): id = granule file name without extension; datetime,
start_datetime and end_datetime from the source's temporal extent (CMR's, or the dates in an
object's name; never "now"); ``updated`` is the revision date, so a rerun of the same revision
yields the same item; which granule it is, in the source's words, is ``stac.identity``; asset
``cog_default`` is the COG with the projection, raster and file extensions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pystac
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics

from cog_assets.dataset import DatasetConfig
from cog_assets.formats.cog import CogInfo
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.stac import catalog, footprint, identity
from cog_assets.stac.identity import cmr_record_url
from cog_assets.store.layout import COG_MEDIA_TYPE

COG_ASSET = "cog_default"
THUMBNAIL_ASSET = "thumbnail"
RENDER_EXTENSION = "https://stac-extensions.github.io/render/v2.0.0/schema.json"


def _multihash_sha256(hex_digest: str) -> str:
    return "1220" + hex_digest


def granule_footprint(record: GranuleRecord, cog_bounds: footprint.Bbox) -> footprint.Footprint:
    """CMR's footprint of the granule; the COG's bounds when CMR gives none."""
    return record.footprint() or footprint.from_bbox(cog_bounds)


def _describe_cog(asset: pystac.Asset, cog: CogInfo, units: str | None) -> None:
    """projection, raster (statistics as computed when the COG was written) and file fields."""
    projection = ProjectionExtension.ext(asset)
    projection.shape = list(cog.shape)
    projection.transform = cog.transform
    projection.bbox = list(cog.bounds)
    stats = None
    if cog.statistics["valid_pixels"]:
        stats = Statistics.create(
            minimum=cog.statistics["minimum"],
            maximum=cog.statistics["maximum"],
            mean=cog.statistics["mean"],
            valid_percent=round(100.0 * float(cog.statistics["valid_fraction"]), 4),
        )
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(nodata=cog.nodata, data_type=DataType(cog.dtype), unit=units, statistics=stats)
    ]
    file_ext = FileExtension.ext(asset, add_if_missing=True)
    file_ext.size = cog.size
    file_ext.checksum = _multihash_sha256(cog.sha256)


def build_item(
    dataset: DatasetConfig,
    record: GranuleRecord,
    cog: CogInfo,
    cog_uri: str,
    cmr_url: str,
    thumbnail_uri: str | None = None,
) -> pystac.Item:
    """The granule's item: ``cog_default`` (the stored COG, described from what was known when
    it was written: no re-read) and ``thumbnail``."""
    bounds = cog.bounds
    extent = granule_footprint(record, bounds)
    if record.begin is None:
        raise ValueError(f"granule {record.concept_id} has no temporal extent at its source")
    item = pystac.Item(
        id=record.item_id,
        geometry=extent.geometry,
        bbox=list(extent.bbox),
        datetime=record.begin,
        start_datetime=record.begin,
        end_datetime=record.end or record.begin,
        properties=identity.item_properties(record),
        collection=dataset.id,
    )
    item.common_metadata.updated = datetime.fromisoformat(record.revision_date.replace("Z", "+00:00"))
    asset = pystac.Asset(
        href=cog_uri,
        media_type=COG_MEDIA_TYPE,
        roles=["data"],
        title=f"{dataset.reader.title} ({dataset.reader.units or 'unitless'})",
    )
    item.add_asset(COG_ASSET, asset)

    ProjectionExtension.ext(item, add_if_missing=True).code = "EPSG:4326"
    _describe_cog(asset, cog, dataset.reader.units)
    if thumbnail_uri:
        item.add_asset(THUMBNAIL_ASSET, pystac.Asset(href=thumbnail_uri, media_type=pystac.MediaType.PNG,
                                                     roles=["thumbnail"], title="Preview"))
    if record.source == "cmr":
        item.add_link(
            pystac.Link(rel="via", target=cmr_record_url(cmr_url, record), media_type="application/json",
                        title=f"CMR granule record (revision {record.revision_id})")
        )
    if record.data_url:
        item.add_link(pystac.Link(rel="derived_from", target=record.data_url, title="source granule"))
    return item


def build_collection(dataset: DatasetConfig) -> pystac.Collection:
    """The collection from the dataset file (extent from the CMR query, if any)."""
    bbox, interval = identity.collection_extent(dataset)
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
            temporal=pystac.TemporalExtent([interval]),
        ),
        extra_fields=identity.collection_fields(dataset),
    )
    collection.item_assets = {
        COG_ASSET: pystac.ItemAssetDefinition.create(
            title=dataset.reader.title,
            description=None,
            media_type=COG_MEDIA_TYPE,
            roles=["data"],
        ),
        THUMBNAIL_ASSET: pystac.ItemAssetDefinition.create(
            title="Preview", description=None, media_type=pystac.MediaType.PNG, roles=["thumbnail"]
        ),
    }
    render = dataset.stac.render
    collection.stac_extensions.append(RENDER_EXTENSION)
    collection.extra_fields["renders"] = {
        "default": {
            "title": f"{dataset.reader.title} ({dataset.reader.units or 'unitless'})",
            "assets": [COG_ASSET],
            "colormap_name": render.colormap,
            "rescale": [list(render.rescale)],
        }
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
