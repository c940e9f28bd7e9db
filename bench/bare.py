"""The benches' independent baseline: a granule turned into a COG and a STAC item with the
libraries alone (httpx, hashlib, h5py, numpy, rasterio/GDAL, rio-cogeo, pystac, boto3), no
line of cog_assets. Each worker process runs its share of the granules one after the other.

Per granule: download with the bearer token (streamed, md5 checked against CMR), HDF5 read,
north-up, COG with the product's profile (GDAL's COG driver: deflate, predictor 3, 512 blocks,
averaged overviews, nodata), rio-cogeo validation, sha256, a minimal STAC item (datetime,
bbox, the COG asset with its checksum), and three uploads (granule, COG, item JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# how each dataset's variable becomes a north-up (rows, cols) array
LAYOUTS = {
    "omdoao3e": ("/HDFEOS/GRIDS/ColumnAmountO3/Data Fields/ColumnAmountO3", "south_up"),
    "gpm_3imerghh": ("/Grid/precipitation", "lon_lat_south_up"),
}


@dataclass(frozen=True)
class BareGranule:
    """What the baseline knows of a granule (what CMR's record says)."""

    dataset: str
    concept_id: str
    file_name: str
    url: str
    md5: str
    begin: str  # ISO 8601
    end: str


def read_north_up(path: Path, variable: str, layout: str):
    """h5py + numpy: the variable north-up as float32 with its fill, and the global transform."""
    import h5py
    import numpy as np
    from affine import Affine

    with h5py.File(path, "r") as handle:
        node = handle[variable]
        data = node[()].astype(np.float32)
        fill = np.float32(np.asarray(node.attrs["_FillValue"]).ravel()[0])
    if layout == "lon_lat_south_up":
        data = data[0].T  # (time, lon, lat) → (lat, lon)
    data = np.ascontiguousarray(data[::-1])  # row 0 is the south edge
    rows, cols = data.shape
    return data, float(fill), Affine(360.0 / cols, 0, -180, 0, -180.0 / rows, 90)


def write_cog(data, fill: float, transform, destination: Path) -> None:
    """GDAL's COG driver with the product's profile."""
    import rasterio

    with rasterio.open(
        destination, "w", driver="COG", dtype="float32", count=1, height=data.shape[0], width=data.shape[1],
        crs="EPSG:4326", transform=transform, nodata=fill,
        BLOCKSIZE=512, COMPRESS="DEFLATE", PREDICTOR="YES", OVERVIEW_RESAMPLING="AVERAGE",
    ) as cog:
        cog.write(data, 1)


def _download(client, granule: BareGranule, token: str, target: Path) -> None:
    digest = hashlib.md5()
    with client.stream("GET", granule.url, headers={"Authorization": f"Bearer {token}"}) as response:
        response.raise_for_status()
        with target.open("wb") as handle:
            for chunk in response.iter_bytes(1 << 20):
                handle.write(chunk)
                digest.update(chunk)
    if digest.hexdigest() != granule.md5:
        raise ValueError(f"{granule.file_name}: md5 mismatch")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _item(granule: BareGranule, cog_href: str, sha256: str, size: int) -> dict:
    import pystac

    begin, end = datetime.fromisoformat(granule.begin), datetime.fromisoformat(granule.end)
    item = pystac.Item(
        id=granule.file_name.rsplit(".", 1)[0], bbox=[-180.0, -90.0, 180.0, 90.0], datetime=begin,
        geometry={"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]},
        properties={"start_datetime": granule.begin, "end_datetime": end.isoformat()},
    )
    item.add_asset("cog_default", pystac.Asset(
        href=cog_href, media_type="image/tiff; application=geotiff; profile=cloud-optimized", roles=["data"],
        extra_fields={"file:checksum": "1220" + sha256, "file:size": size},
    ))
    return item.to_dict(include_self_link=False)


def process(granules: list[BareGranule], bucket: str, prefix: str, token: str) -> dict[str, float]:
    """One worker: every granule of its share, in order. Returns seconds spent and counts."""
    import boto3
    import httpx
    import rasterio
    from rio_cogeo.cogeo import cog_validate

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION"))
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client, rasterio.Env(), tempfile.TemporaryDirectory() as scratch:
        for granule in granules:
            folder = Path(scratch)
            raw, cog = folder / granule.file_name, folder / "out.tif"
            _download(client, granule, token, raw)
            data, fill, transform = read_north_up(raw, *LAYOUTS[granule.dataset])
            write_cog(data, fill, transform, cog)
            if not cog_validate(str(cog), quiet=True)[0]:
                raise ValueError(f"{granule.file_name}: invalid COG")
            key = f"{prefix}/{granule.dataset}/{granule.concept_id}"
            s3.upload_file(str(raw), bucket, f"{key}/{granule.file_name}")
            s3.upload_file(str(cog), bucket, f"{key}/cog.tif")
            item = _item(granule, f"s3://{bucket}/{key}/cog.tif", _sha256(cog), cog.stat().st_size)
            s3.put_object(Bucket=bucket, Key=f"{key}/item.json", Body=json.dumps(item).encode())
            raw.unlink()
    return {"seconds": time.perf_counter() - started, "granules": float(len(granules))}


def harvest(cmr_url: str, short_name: str, version: str, provider: str, page_size: int = 2000) -> int:
    """A bare CMR harvest (httpx and json only): every granule record of a collection, oldest
    revision first, paged with CMR-Search-After; returns how many records arrived, each reduced
    to what a harvester keeps (concept-id, revision, dates, file link)."""
    import httpx

    params = {"short_name": short_name, "version": version, "provider": provider, "sort_key[]": "revision_date",
              "page_size": str(page_size)}
    kept: dict[str, tuple] = {}
    headers: dict[str, str] = {}
    with httpx.Client(base_url=cmr_url, timeout=120) as client:
        while True:
            response = client.get("/search/granules.umm_json", params=params, headers=headers)
            response.raise_for_status()
            items = response.json()["items"]
            for item in items:
                meta, umm = item["meta"], item["umm"]
                links = [u["URL"] for u in umm.get("RelatedUrls", []) if u.get("Type") == "GET DATA"]
                kept[meta["concept-id"]] = (meta["revision-id"], meta["revision-date"],
                                            umm["TemporalExtent"]["RangeDateTime"]["BeginningDateTime"], links[:1])
            after = response.headers.get("CMR-Search-After")
            if not after or len(items) < page_size:
                return len(kept)
            headers = {"CMR-Search-After": after}
