"""An S3 prefix as the chain's granule source: each granule's current object, a verified copy
of it, and every granule the prefix holds now (for the invariant check)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.sources.s3.bucket import Bucket, SourceError
from cog_assets.sources.s3.config import S3Source
from cog_assets.sources.s3.objects import Identified, identify, listed_of, make_record


class BucketGranules:
    """The granules of a dataset whose source is ``kind: s3``."""

    kind = "s3"

    def __init__(self, source: S3Source, bucket: Bucket) -> None:
        self.source, self.bucket = source, bucket

    def current(self, ids: list[str]) -> dict[str, GranuleRecord | str]:
        """Each granule's object as it is now: the first in key order whose stem is the id (one
        short listing per granule; the name is not known from the id alone)."""
        found: dict[str, GranuleRecord | str] = {}
        for granule_id in ids:
            for obj in self.bucket.named(granule_id):
                match = identify(self.source, obj)
                if isinstance(match, Identified) and match.stem == granule_id:
                    found[granule_id] = make_record(self.source, obj, match)
                    break
                if match is not None and not isinstance(match, Identified) and obj.name.startswith(granule_id + "."):
                    found.setdefault(granule_id, str(match))
        return found

    def fetch(self, record: GranuleRecord, directory: Path) -> Path:
        """A verified copy of exactly the listed revision (size, ETag; MD5 when it is one)."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / record.require_file_name()
        self.bucket.copy(listed_of(record), target)
        return target

    def unavailable(self, granule_id: str, problem: str | None) -> Exception:
        return SourceError(problem or (
            f"granule {granule_id}: no object under {self.source.url} has this stem and matches the "
            "dataset's pattern any more; it was deleted or renamed (the sensor withdraws it)"
        ))

    def live(self) -> Iterator[GranuleRecord]:
        """Every granule the prefix holds now (the first object of each stem, as the sensor)."""
        seen: set[str] = set()
        for page in self.bucket.pages(None):
            for obj in page.objects:
                match = identify(self.source, obj)
                if isinstance(match, Identified) and match.stem not in seen:
                    seen.add(match.stem)
                    yield make_record(self.source, obj, match)
