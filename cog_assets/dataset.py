"""A dataset is one YAML file under ``cog_assets/datasets/``: this module is its typed model.

Everything that differs between datasets (where granules come from: a CMR query or a bucket
prefix; how to read the science variable, the STAC collection text, the sensor's policy) lives
in that file, so adding a dataset needs no Python. A bad file fails when the definitions load, naming the file, the field and what
was expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cog_assets.formats.config import GridSpec, ReaderConfig
from cog_assets.sources.cmr.query import CmrQuery
from cog_assets.sources.s3.config import S3Source

__all__ = ["CmrQuery", "GridSpec", "ReaderConfig", "S3Source", "CmrSource", "DatasetConfig", "DatasetConfigError", "load_dataset", "load_datasets"]

DATASETS_DIR = Path(__file__).parent / "datasets"
DATASET_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class DatasetConfigError(ValueError):
    """A dataset YAML file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CmrSource(_Strict):
    """Granules found by a CMR query: the query itself is the file's ``cmr`` section."""

    kind: Literal["cmr"] = "cmr"


SourceConfig = Annotated[CmrSource | S3Source, Field(discriminator="kind")]


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
    relist_minutes: float = Field(
        default=60.0,
        ge=0,
        description="S3 sources: a full listing of the prefix (finding overwrites, deletions and "
        "keys added out of order) starts at most this often; ticks in between list only the keys "
        "after the last one seen",
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
    source: SourceConfig = CmrSource()
    cmr: CmrQuery | None = None
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
    def _source_fits(self) -> DatasetConfig:
        """The CMR query goes with kind cmr (the default) only; a bucket has no calendar of days."""
        if self.source.kind == "cmr" and self.cmr is None:
            raise ValueError("a dataset found in CMR needs a cmr section (short_name, version, provider), "
                             "or a source section of another kind (e.g. kind: s3)")
        if self.source.kind != "cmr" and self.cmr is not None:
            raise ValueError(f"source kind {self.source.kind} takes no cmr section: remove it")
        if self.source.kind != "cmr" and self.partitioning.by == "day":
            raise ValueError(f"partitioning by day is for CMR datasets; a {self.source.kind} source is "
                             "partitioned by granule (remove partitioning.by: day)")
        return self

    @model_validator(mode="after")
    def _temporal_order(self) -> DatasetConfig:
        if self.cmr is None:
            return self
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
    def query(self) -> CmrQuery:
        """The CMR query (datasets whose source is CMR; the others have none)."""
        if self.cmr is None:
            raise ValueError(f"dataset {self.id} is not found in CMR (source kind {self.source.kind})")
        return self.cmr

    @property
    def partitions_name(self) -> str:
        """The dynamic partitions' name (by granule); daily partitions have no name."""
        return f"{self.id}_granules"


def _describe(error: ValidationError, path: Path) -> str:
    lines = [f"invalid dataset file {path}:"]
    for item in error.errors():
        loc = list(item["loc"])
        if loc[:1] == ["source"] and len(loc) > 1 and loc[1] in ("cmr", "s3"):
            del loc[1]  # the kind pydantic chose; the file says it already
        field = ".".join(str(part) for part in loc) or "(top level)"
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
            f"dataset file {path} must hold a mapping with id, cmr (or source), reader and stac"
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
