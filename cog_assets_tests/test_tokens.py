"""Tokens go only where they belong, and only over TLS.

The Earthdata token goes to allowed hosts over https; plain http gets it only from an origin
listed in the testing-only setting (loopback addresses). The STAC API token goes to the API's
own origin; a ``next`` link or redirect elsewhere is refused. A 401/403 says whether the token
was sent and, when it was withheld, why and which setting changes that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml

from cog_assets.defs.resources import resources_from_env
from cog_assets.sources import earthdata as earthdata_module
from cog_assets.sources.cmr.client import CmrClient
from cog_assets.sources.earthdata import DownloadError, EarthdataDownloader
from cog_assets.stac.api import StacApi, StacApiError

REPO = Path(__file__).resolve().parents[1]
DAY = datetime(2012, 1, 1, tzinfo=timezone.utc)
CONTENT = b"granule bytes " * 100
LOOPBACK = "http://127.0.0.1"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(earthdata_module, "wait", lambda seconds: None)


def _record(fake_cmr, datasets):
    granule = fake_cmr.add_granule(short_name="OMDOAO3e", version="003", file_name="g.he5", begin=DAY, end=DAY, content=CONTENT)
    return granule, CmrClient(base_url=fake_cmr.url).granule(datasets["omdoao3e"].cmr, granule.concept_id)


def _data_requests(fake_cmr) -> list[dict]:
    return [r for r in fake_cmr.requests if r["path"].startswith(("/data/", "/redirect/"))]


def _mock_http(monkeypatch, handler: Callable[[httpx.Request], httpx.Response]) -> list[httpx.Request]:
    """Every httpx.Client answers through ``handler`` (lets tests use https URLs)."""
    seen: list[httpx.Request] = []
    real = httpx.Client

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    class Mocked(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs["transport"] = httpx.MockTransport(record)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "Client", Mocked)
    return seen


# -- Earthdata -------------------------------------------------------------------------------

def test_plain_http_never_gets_the_token_even_from_an_allowed_host(fake_cmr, datasets, tmp_path):
    _, record = _record(fake_cmr, datasets)
    downloader = EarthdataDownloader(token=fake_cmr.token, token_hosts=["127.0.0.1"])
    with pytest.raises(DownloadError) as error:
        downloader.download(record, tmp_path)
    assert all("Authorization" not in r["headers"] for r in _data_requests(fake_cmr))
    message = str(error.value)
    assert "EARTHDATA_TOKEN was not sent" in message and "plain http" in message
    assert "COG_ASSETS_INSECURE_TESTING_ORIGINS" in message
    assert "generate a new token" not in message


def test_loopback_http_is_allowed_explicitly_by_scheme_and_host(fake_cmr, datasets, tmp_path):
    _, record = _record(fake_cmr, datasets)
    downloader = EarthdataDownloader(token=fake_cmr.token, token_hosts=[], insecure_testing_origins=[LOOPBACK])
    assert downloader.download(record, tmp_path).read_bytes() == CONTENT
    assert _data_requests(fake_cmr)[-1]["headers"]["Authorization"] == f"Bearer {fake_cmr.token}"


def test_token_withheld_from_a_host_that_is_not_allowed_says_so(fake_cmr, datasets, tmp_path):
    granule, record = _record(fake_cmr, datasets)
    target = fake_cmr.file_url(granule, host=fake_cmr.alias_url)  # 'localhost': not allowed
    redirecting = record.model_copy(update={"data_url": f"{fake_cmr.url}/redirect/?to={quote(target, safe='')}"})
    downloader = EarthdataDownloader(token=fake_cmr.token, token_hosts=[], insecure_testing_origins=[LOOPBACK])
    with pytest.raises(DownloadError) as error:
        downloader.download(redirecting, tmp_path)
    hops = _data_requests(fake_cmr)
    assert hops[0]["headers"].get("Authorization") == f"Bearer {fake_cmr.token}"
    assert "Authorization" not in hops[-1]["headers"] and hops[-1]["host"].startswith("localhost")
    message = str(error.value)
    assert "localhost answered HTTP 401" in message
    assert "EARTHDATA_TOKEN was not sent to localhost" in message and "COG_ASSETS_EARTHDATA_HOSTS" in message
    assert "EARTHDATA_TOKEN was sent" not in message and "generate a new token" not in message


def test_token_that_was_sent_and_refused_says_expired_or_eula(fake_cmr, datasets, tmp_path):
    _, record = _record(fake_cmr, datasets)
    downloader = EarthdataDownloader(token="expired", token_hosts=[], insecure_testing_origins=[LOOPBACK])
    with pytest.raises(DownloadError, match=r"HTTP 401 \(EARTHDATA_TOKEN was sent\).*expired or invalid.*EULA"):
        downloader.download(record, tmp_path)


def test_https_earthdata_host_gets_the_token_but_not_after_a_downgrade_or_elsewhere(monkeypatch, fake_cmr, datasets, tmp_path):
    _, record = _record(fake_cmr, datasets)
    hops = {
        "https://data.gesdisc.earthdata.nasa.gov/g.he5": "https://urs.earthdata.nasa.gov/oauth?x=1",
        "https://urs.earthdata.nasa.gov/oauth?x=1": "http://data.gesdisc.earthdata.nasa.gov/g.he5",
        "http://data.gesdisc.earthdata.nasa.gov/g.he5": "https://bucket.s3.example.com/g.he5?signed=1",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) in hops:
            return httpx.Response(302, headers={"Location": hops[str(request.url)]})
        return httpx.Response(200, content=CONTENT)

    seen = _mock_http(monkeypatch, handler)
    on_https = record.model_copy(update={"data_url": "https://data.gesdisc.earthdata.nasa.gov/g.he5"})
    assert EarthdataDownloader(token="secret").download(on_https, tmp_path).read_bytes() == CONTENT
    sent = {str(r.url): r.headers.get("Authorization") for r in seen}
    assert sent == {
        "https://data.gesdisc.earthdata.nasa.gov/g.he5": "Bearer secret",
        "https://urs.earthdata.nasa.gov/oauth?x=1": "Bearer secret",
        "http://data.gesdisc.earthdata.nasa.gov/g.he5": None,  # an Earthdata host, but no TLS
        "https://bucket.s3.example.com/g.he5?signed=1": None,  # TLS, but not an Earthdata host
    }


@pytest.mark.parametrize(
    "entry",
    ["http://data.example.org", "127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:8080", "http://127.0.0.1/data"],
    ids=["not-loopback", "no-scheme", "https", "port", "path"],
)
def test_insecure_testing_origins_accept_only_loopback_http_scheme_and_host(entry):
    with pytest.raises(ValueError, match=r"insecure_testing_origins.*http://127\.0\.0\.1"):
        EarthdataDownloader(token="t", insecure_testing_origins=[entry])
    with pytest.raises(ValueError, match=r"insecure_testing_origins"):
        StacApi(url="http://127.0.0.1:9", token="t", insecure_testing_origins=[entry])


def test_insecure_origins_come_from_an_environment_variable_that_says_so(monkeypatch):
    monkeypatch.setenv("COG_ASSETS_INSECURE_TESTING_ORIGINS", "http://127.0.0.1, http://[::1]")
    resources = resources_from_env()
    assert resources["earthdata"].insecure_testing_origins == ["http://127.0.0.1", "http://[::1]"]
    assert resources["stac_api"].insecure_testing_origins == ["http://127.0.0.1", "http://[::1]"]
    monkeypatch.setenv("COG_ASSETS_INSECURE_TESTING_ORIGINS", "http://stac.internal")
    with pytest.raises(ValueError, match=r"COG_ASSETS_INSECURE_TESTING_ORIGINS.*stac\.internal.*loopback"):
        resources_from_env()


# -- STAC API --------------------------------------------------------------------------------

def test_stac_token_is_not_sent_over_plain_http(stac_api_url):
    from .http_proxy import FaultProxy

    with FaultProxy(stac_api_url) as proxy:
        with pytest.raises(StacApiError, match=r"plain http.*https.*COG_ASSETS_INSECURE_TESTING_ORIGINS"):
            StacApi(url=proxy.url, token="stac-secret").get_collection("omdoao3e")
        assert all("stac-secret" not in json.dumps(r["headers"]) for r in proxy.requests)
        StacApi(url=proxy.url, token="stac-secret", insecure_testing_origins=[LOOPBACK]).get_collection("omdoao3e")
        assert proxy.requests[-1]["headers"].get("Authorization") == "Bearer stac-secret"


def _pages(next_href: str) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if "token=2" in str(request.url):
            return httpx.Response(200, json={"features": [{"id": "b"}], "links": []})
        return httpx.Response(200, json={"features": [{"id": "a"}], "links": [{"rel": "next", "href": next_href}]})

    return handler


def test_stac_next_link_on_the_api_origin_keeps_the_token(monkeypatch):
    seen = _mock_http(monkeypatch, _pages("https://stac.example.org/api/collections/c/items?token=2"))
    api = StacApi(url="https://stac.example.org/api", token="stac-secret")
    assert [i["id"] for i in api.iter_items("c")] == ["a", "b"]
    assert [r.headers.get("Authorization") for r in seen] == ["Bearer stac-secret"] * 2


@pytest.mark.parametrize(
    "href",
    ["https://elsewhere.example.net/collections/c/items?token=2", "http://stac.example.org/api/collections/c/items?token=2"],
    ids=["other-host", "downgraded-scheme"],
)
def test_stac_next_link_to_another_origin_is_refused(monkeypatch, href):
    seen = _mock_http(monkeypatch, _pages(href))
    api = StacApi(url="https://stac.example.org/api", token="stac-secret")
    with pytest.raises(StacApiError, match=r"next.*another origin.*refused.*COG_ASSETS_STAC_API_URL"):
        list(api.iter_items("c"))
    assert [str(r.url) for r in seen] == ["https://stac.example.org/api/collections/c/items?limit=1000"]


def test_stac_redirect_is_refused_naming_its_target(monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": "https://elsewhere.example.net/collections/c"})

    seen = _mock_http(monkeypatch, handler)
    with pytest.raises(StacApiError, match=r"redirect.*https://elsewhere\.example\.net/collections/c.*not followed.*COG_ASSETS_STAC_API_URL"):
        StacApi(url="https://stac.example.org", token="stac-secret").get_collection("c")
    assert {r.url.host for r in seen} == {"stac.example.org"}


# -- secrets outside run workers -------------------------------------------------------------

def test_code_server_and_runs_get_the_same_secrets_from_the_same_place():
    """Sensors run in the code server, runs in their own tasks: both must see each secret the
    code reads, as the same environment variable from the same Secrets Manager entry."""
    from cog_assets.defs.resources import SECRET_VARIABLES

    profile = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    launcher = profile["run_launcher"]["config"]
    runs = {s["name"]: s["valueFrom"] for s in launcher["secrets"]}
    task = json.loads((REPO / "deploy" / "code-server-task.json").read_text())
    [container] = task["containerDefinitions"]
    code_server = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert set(runs) == set(code_server) == set(SECRET_VARIABLES)
    # the run launcher reads each ARN from the variable the code server's entry names
    assert all(runs[name] == {"env": f"{name}_SECRET_ARN"} for name in runs)
    assert all(code_server[name] == f"${{{name}_SECRET_ARN}}" for name in code_server)
    assert launcher.get("secrets_tag", "dagster") is None  # one way in, not tags as well
