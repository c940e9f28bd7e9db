"""A granule file on local disk → a validated COG, its thumbnail and preview, and what the STAC
item says of it: the CPU-heavy part of a granule's work, in one function with plain inputs.

It runs either in the run's own process or in a converter process (``processing.lanes``), so
both its job and its result travel as JSON: paths, the reader settings and numbers, never
arrays or pickles. Everything the item and the materializations need is computed here while
the data is in memory (statistics, size, sha256), so nothing re-reads the COG later.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from cog_assets.dataset import ReaderConfig
from cog_assets.formats import cog as cogs
from cog_assets.formats import geotiff
from cog_assets.formats.cog import CogInfo
from cog_assets.formats.readers import read_granule
from cog_assets.formats.thumbnail import render_images
from cog_assets.store.objects import sha256_of


@dataclass(frozen=True)
class ConversionJob:
    """One granule to convert: where it is, how to read it, where the COG goes, how to render it."""

    granule: Path
    reader: ReaderConfig
    destination: Path
    colormap: str
    rescale: tuple[float, float]
    threads: int = 1

    def to_json(self) -> str:
        return json.dumps({
            "granule": str(self.granule), "reader": self.reader.model_dump(mode="json"),
            "destination": str(self.destination), "colormap": self.colormap,
            "rescale": list(self.rescale), "threads": self.threads,
        })

    @classmethod
    def from_json(cls, text: str) -> ConversionJob:
        raw = json.loads(text)
        return cls(Path(raw["granule"]), ReaderConfig.model_validate(raw["reader"]), Path(raw["destination"]),
                   raw["colormap"], (float(raw["rescale"][0]), float(raw["rescale"][1])), int(raw["threads"]))


@dataclass
class Converted:
    """The COG at ``job.destination`` and what was learnt writing it. When the validator refused
    it, ``info`` is None and ``errors`` says why (nothing else was produced)."""

    cog: Path
    errors: list[str]
    warnings: list[str]
    info: CogInfo | None = None
    thumbnail: Path | None = None  # PNG beside the COG
    preview: Path | None = None  # WebP beside the COG
    converter: int = 0  # the process that converted it
    started: float = 0.0  # wall clock (time.time) around the conversion
    finished: float = 0.0
    used_as_is: bool = False  # the granule was a valid COG already, stored byte for byte

    @property
    def valid(self) -> bool:
        return self.info is not None

    def to_json(self) -> str:
        raw = asdict(self)
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in raw.items()})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Converted:
        info = raw["info"]
        if info is not None:
            info = CogInfo(tuple(info["shape"]), info["transform"], tuple(info["bounds"]), info["nodata"],  # type: ignore[arg-type]
                           info["statistics"], info["size"], info["sha256"], info["dtype"])
        paths = {k: Path(raw[k]) if raw[k] else None for k in ("thumbnail", "preview")}
        return cls(Path(raw["cog"]), raw["errors"], raw["warnings"], info, **paths, converter=raw["converter"],
                   started=raw["started"], finished=raw["finished"], used_as_is=raw["used_as_is"])


def convert(job: ConversionJob) -> Converted:
    """Read, write, validate, describe and render one granule (GranuleReadError and GDAL's
    errors propagate: the caller fails the granule with them)."""
    started = time.time()
    raster = read_granule(job.granule, job.reader)
    used_as_is = geotiff.use_as_is(job.granule, job.reader, job.destination)  # a COG already
    if not used_as_is:
        cogs.write_cog(raster, job.destination, job.threads)
    valid, errors, warnings = cogs.validate(job.destination)
    if not valid:
        return Converted(job.destination, errors, warnings, converter=os.getpid(), started=started, finished=time.time())
    info = (cogs.read_info(job.destination) if used_as_is
            else cogs.info_of(raster, job.destination, sha256_of(job.destination)))
    del raster  # the grid is not needed for the pictures: they read the COG's overview
    png, webp = render_images(job.destination, job.colormap, job.rescale)
    thumbnail, preview = job.destination.with_suffix(".png"), job.destination.with_suffix(".webp")
    thumbnail.write_bytes(png)
    preview.write_bytes(webp)
    return Converted(job.destination, errors, warnings, info, thumbnail, preview, os.getpid(), started, time.time(),
                     used_as_is)


def error_to_json(exc: BaseException) -> str:
    return json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}})


def raise_reported(error: dict[str, str]) -> NoReturn:
    """Re-raise an error a converter process reported, as the same type where it is one the
    caller knows (so a granule's failure reads the same wherever it was converted)."""
    from rasterio.errors import RasterioError, RasterioIOError

    from cog_assets.formats.errors import GranuleReadError

    known: dict[str, type[Exception]] = {
        t.__name__: t for t in (GranuleReadError, RasterioIOError, RasterioError, ValueError, OSError, KeyError, RuntimeError)
    }
    kind = known.get(error["type"])
    if kind is None:
        raise RuntimeError(f"{error['type']}: {error['message']}")
    raise kind(error["message"])
