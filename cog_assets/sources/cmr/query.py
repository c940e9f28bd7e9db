"""The CMR granule query a dataset file's ``cmr`` section holds (``source: {kind: cmr}``)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator


class CmrQuery(BaseModel):
    """Which granules belong to the dataset, as CMR's granule search parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
