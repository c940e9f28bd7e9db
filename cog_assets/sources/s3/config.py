"""The dataset file's ``source`` section for objects already in a bucket (``kind: s3``).

``url`` is the prefix to list (``s3://bucket/prefix/``, or ``file:///dir/`` for a local
folder), ``pattern`` picks the dataset's objects by name and names their date's parts, and
``datetime_range`` widens a single date to the day, month or year it stands for (VEDA's
convention). Validated when the definitions load, like the rest of the file.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cog_assets.sources.s3.pattern import DateRange, NamePattern, check_pattern

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@lru_cache(maxsize=64)
def _names(pattern: str, datetime_range: DateRange | None) -> NamePattern:
    """Compiled once per pattern (a listing asks for every object), not cached on the model,
    so a copy with another pattern never sees a stale one."""
    return NamePattern.of(pattern, datetime_range)


class S3Source(BaseModel):
    """Objects under one prefix whose names match ``pattern``: one granule per object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["s3"]
    url: str = Field(description="s3://bucket/prefix/ or file:///absolute/dir/ (objects directly under it)")
    # validated before pattern, which is checked against it
    datetime_range: DateRange | None = Field(
        default=None, description="day, month or year: the period a single date in the name stands for"
    )
    pattern: str = Field(description="regular expression searched in each object's name, with named date groups")

    @field_validator("url")
    @classmethod
    def _location(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme == "s3":
            if not _BUCKET.match(parsed.netloc):
                raise ValueError("expected s3://bucket/prefix/ with a valid bucket name (3-63 of a-z, 0-9, '.', '-')")
        elif parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
                raise ValueError("a local folder is written file:///absolute/dir/")
        else:
            raise ValueError("expected s3://bucket/prefix/ or file:///absolute/dir/")
        if parsed.query or parsed.fragment or ".." in parsed.path.split("/"):
            raise ValueError("expected a plain prefix: no '..', query or fragment")
        return value if value.endswith("/") else value + "/"

    @field_validator("pattern")
    @classmethod
    def _dates(cls, value: str, info: ValidationInfo) -> str:
        check_pattern(value, info.data.get("datetime_range"))  # ValueError: shown with the field
        return value

    @property
    def scheme(self) -> str:
        return urlparse(self.url).scheme

    @property
    def bucket(self) -> str:
        return urlparse(self.url).netloc

    @property
    def prefix(self) -> str:
        """The key prefix (``''`` or ending in ``/``); for file:// the folder's path."""
        path = unquote(urlparse(self.url).path)
        return path if self.scheme == "file" else path.lstrip("/")

    @property
    def names(self) -> NamePattern:
        return _names(self.pattern, self.datetime_range)

    def object_url(self, name: str) -> str:
        return f"{self.url}{name}"
