"""The typed granule record, parsed from CMR's UMM-G JSON (or made from an object in a bucket).

A record carries what the rest of the platform needs from its source: identity and revision
(for partitions and reprocessing), the data URL and its declared size and checksum (for
staging), and the temporal and spatial extent (for the STAC item). Every source produces this
one record type (``source`` says which: CMR, or an S3 prefix, see ``sources.s3.objects``), so
the chain never asks where a granule came from. Records are stored as JSON, never pickled.
"""

from __future__ import annotations

import posixpath
import re
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict

from cog_assets.stac import footprint

CONCEPT_ID = re.compile(r"^G\d+-[A-Z0-9_]+$")
SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")
_SIZE_UNITS = {"KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "B": 1}
_CHECKSUM_ALGORITHMS = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA1": "sha1",
    "SHA-256": "sha256",
    "SHA256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
    "SHA512": "sha512",
}


class UmmParseError(ValueError):
    """A CMR item lacks a field the platform cannot work without."""


class GranuleRecord(BaseModel):
    """One granule revision as its source describes it (for CMR: its UMM-G record)."""

    model_config = ConfigDict(frozen=True)

    source: Literal["cmr", "s3"] = "cmr"
    concept_id: str
    revision_id: int
    revision_date: str
    granule_ur: str
    collection_concept_id: str | None = None
    file_name: str | None
    begin: datetime | None
    end: datetime | None
    spatial: dict[str, Any] | None = None  # UMM-G SpatialExtent, as CMR gave it
    data_url: str | None
    data_urls: tuple[str, ...] = ()
    s3_urls: tuple[str, ...] = ()
    size_bytes: int | None = None
    approx_size_bytes: int | None = None
    checksum: str | None = None
    checksum_algorithm: str | None = None
    url_problem: str | None = None
    etag: str | None = None  # S3 sources: the object's ETag when it was listed

    @property
    def revised(self) -> datetime:
        """When CMR published this revision (``revision_date``, parsed)."""
        return parse_cmr_time(self.revision_date)

    @property
    def item_id(self) -> str:
        """STAC item id: the granule file name without its extension."""
        name = self.require_file_name()
        stem, _ext = posixpath.splitext(name)
        return stem or name

    def footprint(self) -> footprint.Footprint | None:
        """bbox and GeoJSON geometry by the STAC rules (None when CMR gives no extent).

        Worked out when an item is built, not at discovery: a footprint CMR got wrong fails
        its own granule, with this message, and costs the sensor nothing.
        """
        try:
            return footprint.from_umm_spatial(self.spatial or {})
        except (footprint.FootprintError, KeyError, TypeError, ValueError) as exc:
            raise UmmParseError(
                f"granule {self.concept_id}: CMR's SpatialExtent cannot be read as a footprint "
                f"({exc}); report the record to the data provider"
            ) from exc

    @property
    def bbox(self) -> footprint.Bbox | None:
        """STAC bbox: west > east across the antimeridian, ±90 around a pole."""
        shape = self.footprint()
        return shape.bbox if shape else None

    @property
    def geometry(self) -> dict[str, Any] | None:
        """GeoJSON geometry: cut at the antimeridian, closed over a pole."""
        shape = self.footprint()
        return shape.geometry if shape else None

    def require_file_name(self) -> str:
        if self.file_name is None:
            raise UmmParseError(
                self.url_problem
                or f"granule {self.concept_id} ({self.granule_ur}) has no usable 'GET DATA' URL "
                "in CMR's RelatedUrls; nothing can be downloaded. Check the collection's "
                "metadata, or set cmr.data_url_pattern in the dataset file to pick the right link"
            )
        return self.file_name


_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_cmr_time(value: str) -> datetime:
    """A CMR date as an aware UTC datetime, whichever of its forms it comes in.

    CMR mixes ``…T18:51:39+0000``, ``…T18:51:39.123Z`` and ``…T18:51:39Z`` within one response:
    compared as strings they sort wrongly, so every date is parsed before any comparison.
    """
    match = _TIME.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a CMR date (ISO 8601, e.g. 2024-06-01T00:00:00.000Z)")
    day, clock, fraction, zone = match.groups()
    fraction = (fraction or ".0")[:7].ljust(7, "0")
    zone = "+00:00" if zone in (None, "Z") else f"{zone[:3]}:{zone[-2:]}"
    clock = (clock or "00:00:00") + (":00" if clock and clock.count(":") == 1 else "")
    return datetime.fromisoformat(f"{day}T{clock}{fraction}{zone}").astimezone(timezone.utc)


def cmr_time(value: datetime) -> str:
    """The form the platform sends to CMR: UTC, milliseconds, ``Z``."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse_time(value: str | None) -> datetime | None:
    return parse_cmr_time(value) if value else None


def file_name_of(url: str) -> str:
    return posixpath.basename(unquote(urlparse(url).path))


def _archive_entry(umm: dict[str, Any], file_name: str | None) -> dict[str, Any] | None:
    entries = umm.get("DataGranule", {}).get("ArchiveAndDistributionInformation", []) or []
    for entry in entries:
        if file_name and entry.get("Name") == file_name:
            return entry
    return entries[0] if len(entries) == 1 else None


def _identity(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str, int, str]:
    """meta, umm, concept-id, revision-id and revision date; refused if any is missing."""
    try:
        meta, umm = item["meta"], item["umm"]
        concept_id, revision_id, revision_date = meta["concept-id"], int(meta["revision-id"]), meta["revision-date"]
    except (KeyError, TypeError, ValueError) as exc:
        raise UmmParseError(f"CMR item lacks meta.concept-id/revision-id/revision-date: {exc!r}") from None
    if not CONCEPT_ID.match(str(concept_id)):
        raise UmmParseError(
            f"CMR item has concept-id {concept_id!r}, which is not a granule concept-id "
            "(G<digits>-<PROVIDER>); it cannot be a partition key"
        )
    return meta, umm, concept_id, revision_id, revision_date


def _data_url(umm: dict[str, Any], concept_id: str, pattern: str | None) -> tuple[str | None, str | None, str | None]:
    """The chosen GET DATA URL, its file name (None if unsafe) and what is wrong with it."""
    urls = umm.get("RelatedUrls", []) or []
    https = [u["URL"] for u in urls if u.get("Type") == "GET DATA" and u.get("URL", "").startswith("http")]
    compiled = re.compile(pattern) if pattern else None
    chosen = next((u for u in https if compiled is None or compiled.search(u)), None)
    file_name = file_name_of(chosen) if chosen else None
    if file_name is not None and not SAFE_FILE_NAME.match(file_name):
        return chosen, None, (
            f"granule {concept_id}: data URL file name {file_name!r} is not a plain file name "
            "(letters, digits, '.', '_', '-', '+'); it is refused so that it cannot escape the "
            "storage prefix. Report the record to the data provider"
        )
    return chosen, file_name, None


def _times(umm: dict[str, Any], concept_id: str, revision_date: str) -> tuple[datetime, datetime]:
    temporal = umm.get("TemporalExtent", {})
    range_dt = temporal.get("RangeDateTime", {})
    try:
        begin = _parse_time(range_dt.get("BeginningDateTime") or temporal.get("SingleDateTime"))
        end = _parse_time(range_dt.get("EndingDateTime")) or begin
        parse_cmr_time(revision_date)
    except ValueError as exc:
        raise UmmParseError(f"granule {concept_id}: {exc}") from None
    if begin is None or end is None:
        raise UmmParseError(
            f"granule {concept_id} ({umm.get('GranuleUR')}) has no TemporalExtent in CMR; a STAC "
            "item needs the data's time, so it cannot be a partition. Report it to the data provider"
        )
    return begin, end


def parse_umm_item(item: dict[str, Any], data_url_pattern: str | None = None) -> GranuleRecord:
    """Turn one ``items[]`` element of a ``granules.umm_json`` response into a record."""
    meta, umm, concept_id, revision_id, revision_date = _identity(item)
    chosen, file_name, url_problem = _data_url(umm, concept_id, data_url_pattern)
    entry = _archive_entry(umm, file_name) or {}
    checksum = entry.get("Checksum") or {}
    algorithm = _CHECKSUM_ALGORITHMS.get(str(checksum.get("Algorithm", "")).upper())
    size_unit = _SIZE_UNITS.get(str(entry.get("SizeUnit", "")).upper())
    approx = int(entry["Size"] * size_unit) if size_unit and entry.get("Size") is not None else None
    begin, end = _times(umm, concept_id, revision_date)
    urls = umm.get("RelatedUrls", []) or []
    return GranuleRecord(
        concept_id=concept_id,
        revision_id=revision_id,
        revision_date=revision_date,
        granule_ur=umm.get("GranuleUR", concept_id),
        collection_concept_id=meta.get("collection-concept-id"),
        file_name=file_name,
        begin=begin,
        end=end,
        spatial=umm.get("SpatialExtent") or None,
        data_url=chosen,
        data_urls=tuple(u["URL"] for u in urls if u.get("Type") == "GET DATA" and u.get("URL", "").startswith("http")),
        s3_urls=tuple(u["URL"] for u in urls if u.get("Type") == "GET DATA VIA DIRECT ACCESS"),
        size_bytes=entry.get("SizeInBytes"),
        approx_size_bytes=approx,
        checksum=checksum.get("Value") if algorithm else None,
        checksum_algorithm=algorithm,
        url_problem=url_problem,
    )
