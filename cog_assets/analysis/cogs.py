"""A stored COG as analyses and users' assets see it: where it is, what it is, which version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CogRef:
    """A stored COG: ``uri`` is a local path or an ``s3://`` URI that ``rasterio.open`` reads."""

    uri: str
    item_id: str
    datetime: datetime | None
    end_datetime: datetime | None = None
    concept_id: str | None = None
    sha256: str | None = None
    partition_key: str | None = None

    @property
    def version(self) -> str:
        """Changes whenever the COG does (a revision): its checksum, else its URI."""
        return self.sha256 or self.uri
