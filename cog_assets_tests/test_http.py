"""Every HTTP client the platform makes shares one TLS context (cog_assets.http): building one
per client loads the CA bundle each time (~25 ms of CPU per download or API call)."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from cog_assets.http import tls_context
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.sources.earthdata import DownloadError, EarthdataDownloader
from cog_assets.stac.api import StacApi


@pytest.fixture
def contexts(monkeypatch) -> list:
    """The ``verify`` argument of every httpx.Client made, each answered 404 by a mock transport."""
    made, real = [], httpx.Client

    def client(*args, **kwargs):
        made.append(kwargs.get("verify"))
        return real(*args, **{**kwargs, "transport": httpx.MockTransport(lambda r: httpx.Response(404, json={}))})

    monkeypatch.setattr(httpx, "Client", client)
    return made


def test_clients_share_one_tls_context(contexts, tmp_path, datasets):
    StacApi(url="https://stac.example.org").get_item("omdoao3e", "x")
    CmrClient(base_url="https://cmr.example.org", max_attempts=1)._client().close()
    record = GranuleRecord(
        concept_id="G1-GES_DISC", revision_id=1, revision_date="2024-01-01T00:00:00Z", granule_ur="g",
        begin=datetime(2024, 1, 1, tzinfo=timezone.utc), end=None, file_name="g.he5",
        data_url="https://data.earthdata.nasa.gov/g.he5",
    )
    with pytest.raises(DownloadError, match="HTTP 404"):
        EarthdataDownloader(token=None, max_attempts=1).download(record, tmp_path)
    assert len(contexts) == 3 and all(context is tls_context() for context in contexts)
