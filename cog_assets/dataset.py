"""A dataset is one YAML file under ``cog_assets/datasets/``: this module is its typed model.

Everything that differs between datasets (the CMR query, how to read the science variable,
the STAC collection text, the sensor's policy) lives in that file, so adding a dataset needs
no Python. A bad file fails when the definitions load, naming the file, the field and what
was expected.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DATASETS_DIR = Path(__file__).parent / "datasets"
DATASET_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class DatasetConfigError(ValueError):
    """A dataset YAML file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CmrQuery(_Strict):
    """Which granules belong to the dataset, as CMR's granule search parameters."""

    short_name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    temporal_start: datetime | None = None
    temporal_end: datetime | None = None
    bounding_box: tuple[float, float, float, float] | None = Field(
        default=None, description="west, south, east, north in degrees"
    )
    data_url_pattern: str | None = Field(
        default=None,
        description="regex selecting the science file among several GET DATA links",
    )

    @field_validator("temporal_start", "temporal_end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """CMR times are UTC: a time written without a zone means UTC, not the machine's zone."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    @field_validator("data_url_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("bounding_box")
    @classmethod
    def _bbox_in_range(
        cls, value: tuple[float, float, float, float] | None
    ) -> tuple[float, float, float, float] | None:
        if value is not None:
            west, south, east, north = value
            if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south < north <= 90):
                raise ValueError("expected [west, south, east, north] within ±180/±90, south < north")
        return value


class GridSpec(_Strict):
    """The grid's geographic extent; used when the file does not describe its own grid."""

    west: float = -180.0
    south: float = -90.0
    east: float = 180.0
    north: float = 90.0


class ReaderConfig(_Strict):
    """How to turn the granule file into one north-up 2-D array."""

    format: Literal["hdfeos5_grid", "hdf5_latlon_grid"]
    variable: str = Field(min_length=2, description="absolute HDF5 path of the science variable")
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
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute HDF5 path starting with '/'")
        return value

    @field_validator("valid_range")
    @classmethod
    def _ordered(cls, value: str | tuple[float, float]) -> str | tuple[float, float]:
        if isinstance(value, tuple) and not value[0] < value[1]:
            raise ValueError("expected [min, max] with min < max, or auto, or ignore")
        return value


class StacProvider(_Strict):
    name: str
    roles: list[Literal["licensor", "producer", "processor", "host"]] = Field(default_factory=list)
    url: str | None = None


class DuplicatePolicy(_Strict):
    """What publishing does when the STAC API already holds the granule's item (as Cumulus)."""

    same_revision: Literal["skip", "replace", "error"] = "skip"
    new_revision: Literal["skip", "replace", "error"] = "replace"


class RenderConfig(_Strict):
    """How the data is drawn: the thumbnails, the UI preview and the collection's STAC
    ``renders`` (what a tiler such as titiler uses for maps)."""

    colormap: str = Field(default="viridis", description="a rio-tiler colormap name")
    rescale: tuple[float, float] = Field(description="the value range mapped onto the colormap, in the data's units")

    @field_validator("colormap")
    @classmethod
    def _known(cls, value: str) -> str:
        from rio_tiler.colormap import cmap

        if value not in cmap.list():
            raise ValueError(f"unknown colormap {value!r}; use one of rio-tiler's, e.g. viridis, blues, rdylbu_r")
        return value

    @field_validator("rescale")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError("expected [low, high] with low < high")
        return value


class StacCollectionConfig(_Strict):
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    license: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    providers: list[StacProvider] = Field(default_factory=list)
    duplicates: DuplicatePolicy = DuplicatePolicy()
    render: RenderConfig


class SensorPolicy(_Strict):
    """How the CMR sensor paces itself. Every granule CMR publishes or revises after the sensor
    is first switched on is processed automatically, whatever its data date."""

    minimum_interval_seconds: int = Field(default=300, ge=30)
    auto_run_days: float = Field(
        default=7.0,
        ge=0,
        description="also process granules published before the sensor was switched on when "
        "their data ends within this many days (the rest of the history is registered for "
        "backfills from the UI)",
    )
    lookback_minutes: float = Field(
        default=120.0,
        ge=60,
        description="each tick re-reads CMR revisions this far behind the previous read: CMR "
        "indexes asynchronously, so a record can become searchable after later ones",
    )
    max_granules_per_tick: int = Field(default=50_000, ge=1)
    max_seconds_per_tick: float = Field(default=20.0, gt=0, le=45)


class BackfillConfig(_Strict):
    """How backfills group granules into runs (see README, 'Performance')."""

    granules_per_run: int = Field(
        default=500,
        ge=1,
        le=1000,
        description="granules per backfill run: Dagster's per-run cost (~7 s of CPU: a process, "
        "imports, the code location) is paid once per range, while each granule still materializes "
        "or fails on its own; a run uses all its cores whatever its size (README, 'Performance')",
    )


class PartitioningConfig(_Strict):
    """What one Dagster partition of the dataset's assets is (see README, 'Partitioning').

    ``granule``: one dynamic partition per CMR granule (concept-id), for datasets of up to
    ~100,000 granules. ``day``: one daily partition per UTC day holding every granule that
    starts that day, for high-frequency datasets (GPM IMERG half-hourly: 48 a day, ~400,000
    in all) whose granule count would overwhelm the UI, the sensor and backfills.
    """

    by: Literal["granule", "day"] = "granule"
    granules_per_day: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="with by: day, how many granules a complete day has (run sizes, completeness)",
    )

    @model_validator(mode="after")
    def _per_day_needs_count(self) -> PartitioningConfig:
        if self.by == "day" and self.granules_per_day is None:
            raise ValueError("by: day needs granules_per_day (how many granules a complete day has)")
        if self.by == "granule" and self.granules_per_day is not None:
            raise ValueError("granules_per_day only applies to by: day")
        return self


class AnalysisConfig(_Strict):
    """Settings of the analyses computed from the COGs (AOI zonal statistics)."""

    version: str = Field(
        default="1",
        min_length=1,
        max_length=64,
        description="analysis_version stored in every AOI statistics row; changing it makes "
        "the next sync recompute every row",
    )


class DatasetConfig(_Strict):
    id: str
    cmr: CmrQuery
    reader: ReaderConfig
    stac: StacCollectionConfig
    partitioning: PartitioningConfig = PartitioningConfig()
    sensor: SensorPolicy = SensorPolicy()
    backfill: BackfillConfig = BackfillConfig()
    analysis: AnalysisConfig = AnalysisConfig()

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not DATASET_ID.match(value):
            raise ValueError("expected lower-case letters, digits and '_', starting with a letter")
        return value

    @model_validator(mode="after")
    def _temporal_order(self) -> DatasetConfig:
        start, end = self.cmr.temporal_start, self.cmr.temporal_end
        if start and end and start >= end:
            raise ValueError("cmr.temporal_start must be before cmr.temporal_end")
        if self.partitioning.by == "day" and start is None:
            raise ValueError("partitioning by day needs cmr.temporal_start: its date is the first partition")
        return self

    @property
    def by_day(self) -> bool:
        return self.partitioning.by == "day"

    @property
    def partitions_per_run(self) -> int:
        """Backfill partitions per run: backfill.granules_per_run granules, in whole days if by day."""
        per_day = self.partitioning.granules_per_day
        if per_day is None:
            return self.backfill.granules_per_run
        return max(1, self.backfill.granules_per_run // per_day)

    @property
    def partitions_name(self) -> str:
        """The dynamic partitions' name (by granule); daily partitions have no name."""
        return f"{self.id}_granules"


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"invalid dataset file {path}:"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  field '{field}': {item['msg']}{shown}")
    lines.append("Fix the file; the fields are described in README.md, 'Add a dataset'.")
    return "\n".join(lines)


def load_dataset(path: Path) -> DatasetConfig:
    """Read and validate one dataset file; the file name (without .yaml) must equal its id."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetConfigError(f"cannot read dataset file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DatasetConfigError(f"dataset file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DatasetConfigError(
            f"dataset file {path} must hold a mapping with id, cmr, reader and stac"
        )
    try:
        config = DatasetConfig.model_validate(raw)
    except ValidationError as exc:
        raise DatasetConfigError(_describe(exc, path)) from None
    if config.id != path.stem:
        raise DatasetConfigError(
            f"invalid dataset file {path}: field 'id' is {config.id!r} but the file is named "
            f"{path.name}; rename the file to {config.id}.yaml or change the id"
        )
    return config


def load_datasets(directory: Path = DATASETS_DIR) -> list[DatasetConfig]:
    """Every ``*.yaml`` in the directory, sorted by id."""
    return [load_dataset(path) for path in sorted(directory.glob("*.yaml"))]
