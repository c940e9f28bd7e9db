"""The dataset file's ``reader`` section: which reader (``format``) turns a granule file into
one north-up grid, and what it needs to know that the file may not say."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class GridSpec(BaseModel):
    """The grid's geographic extent; used when the file does not describe its own grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    west: float = -180.0
    south: float = -90.0
    east: float = 180.0
    north: float = 90.0


class ReaderConfig(BaseModel):
    """How to turn the granule file into one north-up 2-D array."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["hdfeos5_grid", "hdf5_latlon_grid", "geotiff"]
    variable: str | None = Field(
        default=None, min_length=2, description="HDF5 formats: absolute HDF5 path of the science variable"
    )
    band: int | None = Field(default=None, ge=1, description="geotiff: the band to use (default 1)")
    orientation: Literal["auto", "south_up", "north_up"] = Field(
        default="auto",
        description="auto reads it from the grid metadata or the latitude coordinate variable",
    )
    grid: GridSpec | None = None
    fill_value: float | None = Field(default=None, description="overrides the file's _FillValue")
    scale_factor: float | None = Field(default=None, description="overrides the file's scale")
    add_offset: float | None = Field(default=None, description="overrides the file's offset")
    scale_convention: Literal["auto", "cf", "hdfeos"] = Field(
        default="auto",
        description="cf: raw × scale + offset; hdfeos (Aura): scale × (raw − offset); auto: "
        "from the attribute names (scale_factor/add_offset or ScaleFactor/Offset)",
    )
    valid_range: Literal["auto", "ignore"] | tuple[float, float] = Field(
        default="auto",
        description="auto: values outside the file's ValidRange / valid_min / valid_max / "
        "valid_range become nodata; ignore: keep them; [min, max]: use this range (in the "
        "file's stored units, before scaling)",
    )
    units: str | None = None

    @field_validator("variable")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be an absolute HDF5 path starting with '/'")
        return value

    @model_validator(mode="after")
    def _fits_format(self) -> ReaderConfig:
        """A GeoTIFF carries its own grid and values; an HDF5 file needs the variable named."""
        if self.format != "geotiff":
            if self.variable is None:
                raise ValueError(f"format {self.format} needs variable: the absolute HDF5 path of the science variable")
            if self.band is not None:
                raise ValueError("band only applies to format geotiff")
            return self
        unused = [name for name, value in (
            ("variable", self.variable), ("grid", self.grid), ("scale_factor", self.scale_factor),
            ("add_offset", self.add_offset),
            ("orientation", None if self.orientation == "auto" else self.orientation),
            ("scale_convention", None if self.scale_convention == "auto" else self.scale_convention),
        ) if value is not None]
        if unused:
            raise ValueError(
                f"{', '.join(unused)} do(es) not apply to format geotiff (a GeoTIFF carries its own grid "
                "and values); use band, fill_value, valid_range and units"
            )
        return self

    @property
    def title(self) -> str:
        """What the data is called: the variable's name, or the band read from a GeoTIFF."""
        return self.variable.rsplit("/", 1)[-1] if self.variable else f"band {self.band or 1}"

    @field_validator("valid_range")
    @classmethod
    def _ordered(cls, value: str | tuple[float, float]) -> str | tuple[float, float]:
        if isinstance(value, tuple) and not value[0] < value[1]:
            raise ValueError("expected [min, max] with min < max, or auto, or ignore")
        return value
