"""An object in the source prefix as the platform's granule record.

The granule id is the object's stem (its name without the last extension, which is also the
STAC item id), the revision is its LastModified in whole seconds (an overwrite in place is a
later revision), and the data's time comes from the name (``pattern``). An object whose name
matches but cannot be a granule (a name that could escape the storage prefix, an impossible
date) is refused with the reason, never dropped silently.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime

from cog_assets.sources.cmr.records import SAFE_FILE_NAME, GranuleRecord, cmr_time
from cog_assets.sources.s3.bucket import ListedObject
from cog_assets.sources.s3.config import S3Source
from cog_assets.sources.s3.pattern import NameDateError


@dataclass(frozen=True)
class Refused:
    """A matching object that cannot be a granule, and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def stem_of(name: str) -> str:
    """The name without its last extension (``a.nc.tif`` → ``a.nc``): the granule id and item id."""
    stem, _ext = posixpath.splitext(name)
    return stem or name


@dataclass(frozen=True)
class Identified:
    """A matching object's granule id and data time (before any record is built: a listing
    of 250,000 objects builds records only for what is new or changed)."""

    stem: str
    begin: datetime
    end: datetime


def identify(source: S3Source, obj: ListedObject) -> Identified | Refused | None:
    """The object's granule id and time; None when its name does not match the pattern."""
    try:
        dates = source.names.dates(obj.name)
    except NameDateError as exc:
        return Refused(obj.name, f"its name matches the pattern but {exc}")
    if dates is None:
        return None
    stem = stem_of(obj.name)
    if not SAFE_FILE_NAME.match(obj.name) or ".." in obj.name or not SAFE_FILE_NAME.match(stem):
        return Refused(obj.name, "not a plain file name (letters, digits, '.', '_', '-', '+'; no '..'); "
                                 "it could escape the storage prefix, so it is not processed. Rename the object")
    return Identified(stem, *dates)


def record_of(source: S3Source, obj: ListedObject) -> GranuleRecord | Refused | None:
    """The object's record; None when its name does not match the pattern."""
    found = identify(source, obj)
    return make_record(source, obj, found) if isinstance(found, Identified) else found


def make_record(source: S3Source, obj: ListedObject, found: Identified) -> GranuleRecord:
    """The granule record of an identified object."""
    stem, begin, end = found.stem, found.begin, found.end
    url = source.object_url(obj.name)
    return GranuleRecord(
        source="s3",
        concept_id=stem,
        revision_id=int(obj.modified.timestamp()),
        revision_date=cmr_time(obj.modified),
        granule_ur=url,
        file_name=obj.name,
        begin=begin,
        end=end,
        data_url=url,
        data_urls=(url,),
        size_bytes=obj.size,
        checksum=obj.md5,
        checksum_algorithm="md5" if obj.md5 else None,
        etag=obj.etag,
    )


def listed_of(record: GranuleRecord) -> ListedObject:
    """The listing entry a record was made from (to copy exactly that revision)."""
    assert record.file_name is not None and record.etag is not None and record.size_bytes is not None
    return ListedObject(record.file_name, record.size_bytes, record.etag, record.revised)
