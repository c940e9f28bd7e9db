"""The grid every reader produces: one north-up float32 band in EPSG:4326, with its mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

CRS = "EPSG:4326"


@dataclass
class Raster:
    """A north-up float32 grid; pixels equal to ``nodata`` had fill values in the source."""

    data: np.ndarray
    transform: Affine
    nodata: float
    units: str | None
    valid: np.ndarray  # bool mask of valid pixels

    @property
    def crs(self) -> str:
        return CRS
