from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from cog_assets.sources import earthdata as earthdata_module
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.earthdata import DownloadError, EarthdataDownloader

from .cmr_server import Fault

DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)
CONTENT = b"HDF5-ish granule bytes " * 1000


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(earthdata_module, "wait", lambda seconds: None)


@pytest.fixture
def omi(datasets):
    return datasets["omdoao3e"]


def _record(fake_cmr, omi, content=CONTENT, **extra):
    granule = fake_cmr.add_granule(short_name="OMDOAO3e", version="003", file_name="g.he5", begin=DAY, end=DAY, content=content, **extra)
    return granule, CmrClient(base_url=fake_cmr.url).granule(omi.cmr, granule.concept_id)


def _downloader(fake_cmr, hosts=("127.0.0.1",)):
    return EarthdataDownloader(token=fake_cmr.token, insecure_testing_origins=[f"http://{h}" for h in hosts])


def test_download_verifies_and_sends_the_token(fake_cmr, omi, tmp_path):
    _, record = _record(fake_cmr, omi)
    path = _downloader(fake_cmr).download(record, tmp_path)
    assert path.read_bytes() == CONTENT and path.name == "g.he5"
    assert [p.name for p in tmp_path.iterdir()] == ["g.he5"]
    data_requests = [r for r in fake_cmr.requests if r["path"].startswith("/data/")]
    assert data_requests[-1]["headers"]["Authorization"] == f"Bearer {fake_cmr.token}"


def test_redirect_within_token_hosts_keeps_the_token(fake_cmr, omi, tmp_path):
    granule, record = _record(fake_cmr, omi)
    target = fake_cmr.file_url(granule, host=fake_cmr.alias_url)
    redirecting = record.model_copy(update={"data_url": f"{fake_cmr.url}/redirect/?to={quote(target, safe='')}"})
    path = _downloader(fake_cmr, hosts=("127.0.0.1", "localhost")).download(redirecting, tmp_path)
    assert path.read_bytes() == CONTENT


def test_503_then_200_is_retried(fake_cmr, omi, tmp_path):
    granule, record = _record(fake_cmr, omi)
    fake_cmr.fail_download(granule, Fault(status=503), Fault(status=503))
    assert _downloader(fake_cmr).download(record, tmp_path).read_bytes() == CONTENT


def test_more_bytes_than_declared_stops_reading(fake_cmr, omi, tmp_path):
    granule, record = _record(fake_cmr, omi)
    fake_cmr.set_file(granule, CONTENT * 50)
    with pytest.raises(DownloadError, match=r"sent more than the 23000 bytes CMR declared; stopped reading"):
        _downloader(fake_cmr).download(record, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_is_retried_then_reported(fake_cmr, omi, tmp_path):
    granule, record = _record(fake_cmr, omi)
    fake_cmr.set_file(granule, CONTENT[:-100])
    with pytest.raises(DownloadError, match=r"received 22900 bytes but CMR declares 23000 \(truncated"):
        _downloader(fake_cmr).download(record, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_token_says_so(fake_cmr, omi, tmp_path):
    _, record = _record(fake_cmr, omi)
    with pytest.raises(DownloadError, match="no EARTHDATA_TOKEN is set"):
        EarthdataDownloader(token=None, insecure_testing_origins=["http://127.0.0.1"]).download(record, tmp_path)
