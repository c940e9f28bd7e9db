"""What the chain and the checks need from a discovery source, whatever it is.

Every source produces :class:`GranuleRecord` s and answers four questions: the current
revision of some granules (to stage them), a verified local copy of one revision, why a
granule cannot be had, and every granule it holds now (the invariant check). The chain only
talks to this protocol, so adding a source means a new ``sources/<kind>/`` package, a
``source.kind`` in the dataset model, and an entry in :func:`source_for` (and a sensor shell
in ``defs/sensors.py``); nothing in ``processing/`` changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from cog_assets.dataset import DatasetConfig
from cog_assets.sources.cmr.client import CmrClient, CmrError, missing_granule
from cog_assets.sources.cmr.query import CmrQuery
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.sources.earthdata import EarthdataDownloader
from cog_assets.sources.s3.bucket import open_bucket
from cog_assets.sources.s3.granules import BucketGranules


class GranuleSource(Protocol):
    kind: str

    def current(self, ids: list[str]) -> dict[str, GranuleRecord | str]:
        """The current revision of each id; a problem text for unusable ones; absent ids are gone."""
        ...

    def fetch(self, record: GranuleRecord, directory: Path) -> Path:
        """A local copy of the revision, verified against the record."""
        ...

    def unavailable(self, granule_id: str, problem: str | None) -> Exception:
        """The error to raise for a granule the source no longer has (or cannot describe)."""
        ...

    def live(self) -> Iterator[GranuleRecord]:
        """Every granule the source holds now."""
        ...


class CmrGranules:
    """Granules of a CMR query, downloaded from Earthdata."""

    kind = "cmr"

    def __init__(self, cmr: CmrClient, query: CmrQuery, earthdata: EarthdataDownloader | None = None) -> None:
        self.cmr, self.query, self.earthdata = cmr, query, earthdata

    def current(self, ids: list[str]) -> dict[str, GranuleRecord | str]:
        return self.cmr.granules(self.query, ids)

    def fetch(self, record: GranuleRecord, directory: Path) -> Path:
        if self.earthdata is None:
            raise RuntimeError("downloading needs the earthdata resource")
        return self.earthdata.download(record, directory)

    def unavailable(self, granule_id: str, problem: str | None) -> Exception:
        return CmrError(problem or missing_granule(self.query, granule_id))

    def live(self) -> Iterator[GranuleRecord]:
        return (record for page in self.cmr.iter_pages(self.query) for record in page.records)


def granule_description(dataset: DatasetConfig) -> str:
    """The ``granule`` asset's description: what is staged, from where, verified how."""
    if dataset.source.kind == "s3":
        return (f"The original object under {dataset.source.url} whose name matches the dataset's pattern, "
                "copied with If-Match on the ETag it was listed with and verified against its size (and "
                "its MD5 when the ETag is one).")
    return (f"The original {dataset.query.short_name} granule file, downloaded from its CMR 'GET DATA' URL "
            "with EARTHDATA_TOKEN and verified against CMR's size and checksum.")


def source_for(
    dataset: DatasetConfig,
    cmr: CmrClient | None = None,
    earthdata: EarthdataDownloader | None = None,
    s3: Any | None = None,
) -> GranuleSource:
    """The dataset's source; ``s3`` is a dagster-aws ``S3Resource`` (needed for s3:// prefixes)."""
    if dataset.source.kind == "s3":
        client = s3.get_client() if s3 is not None and dataset.source.scheme == "s3" else None
        return BucketGranules(dataset.source, open_bucket(dataset.source, client))
    if cmr is None:
        raise RuntimeError(f"dataset {dataset.id} is found in CMR: the cmr resource is needed")
    return CmrGranules(cmr, dataset.query, earthdata)
