"""The STAC API resource against a real stac-fastapi-pgstac (faults injected by a proxy)."""

from __future__ import annotations

import pytest

from cog_assets.stac import api as stac_api_module
from cog_assets.dataset import DuplicatePolicy
from cog_assets.stac.publishing import collection_payload, publish_item
from cog_assets.stac.api import (
    Decision,
    DuplicateItemError,
    StacApi,
    StacApiError,
    covering_extent,
    decide,
)

from .http_proxy import FaultProxy, ProxyFault
from .services import free_port


def _item(item_id: str, revision: int = 1, day: str = "2012-01-01", bbox=(-180.0, -90.0, 180.0, 90.0)) -> dict:
    west, south, east, north = bbox
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": item_id,
        "collection": "omdoao3e",
        "bbox": list(bbox),
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "properties": {
            "datetime": f"{day}T00:00:00Z",
            "start_datetime": f"{day}T00:00:00Z",
            "end_datetime": f"{day}T23:59:59.999000Z",
            "cmr:revision_id": revision,
        },
        "links": [],
        "assets": {},
    }


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(stac_api_module, "wait", recorded.append)
    return recorded


@pytest.fixture
def proxy(stac_api_url):
    with FaultProxy(stac_api_url) as server:
        yield server


def test_upsert_creates_then_updates_one_identical_item(stac_api_url, datasets):
    api = StacApi(url=stac_api_url)
    assert api.upsert_collection(collection_payload(datasets["omdoao3e"])) == "created"
    assert api.upsert_collection(collection_payload(datasets["omdoao3e"])) == "replaced"
    assert api.upsert_item(_item("a")) == "created"
    first = api.get_item("omdoao3e", "a")
    assert api.upsert_item(_item("a")) == "replaced"
    assert [i["id"] for i in api.iter_items("omdoao3e")] == ["a"]
    assert api.get_item("omdoao3e", "a") == first
    assert api.delete_item("omdoao3e", "a") is True
    assert api.delete_item("omdoao3e", "a") is False
    assert api.get_item("omdoao3e", "a") is None


def test_item_pages_are_followed(stac_api_url, datasets):
    api = StacApi(url=stac_api_url)
    api.upsert_collection(collection_payload(datasets["omdoao3e"]))
    for n in range(7):
        api.upsert_item(_item(f"i{n}", day=f"2012-01-{n + 1:02d}"))
    assert sorted(i["id"] for i in api.iter_items("omdoao3e", limit=3)) == [f"i{n}" for n in range(7)]


def test_rejected_item_carries_the_apis_message(stac_api_url, datasets):
    api = StacApi(url=stac_api_url)
    api.upsert_collection(collection_payload(datasets["omdoao3e"]))
    broken = _item("broken")
    del broken["geometry"]
    with pytest.raises(StacApiError, match=r"HTTP 400.*geometry"):
        api.upsert_item(broken)


def test_publishing_into_an_empty_api_creates_the_collection_first(stac_api_url, datasets):
    api = StacApi(url=stac_api_url)
    assert api.get_collection("omdoao3e") is None
    outcome = publish_item(api, datasets["omdoao3e"], _item("first"), Decision("create", "test"))
    assert outcome == "created"
    assert api.get_collection("omdoao3e")["title"] == datasets["omdoao3e"].stac.title
    assert [i["id"] for i in api.iter_items("omdoao3e")] == ["first"]


def test_429_and_5xx_and_dropped_connections_are_retried(proxy, datasets, waits):
    api = StacApi(url=proxy.url, backoff_seconds=0.2, max_backoff_seconds=1.0)
    api.upsert_collection(collection_payload(datasets["omdoao3e"]))
    proxy.fail(
        ProxyFault(status=429, retry_after="3", method="POST"),
        ProxyFault(status=503),
        ProxyFault(drop=True),
        ProxyFault(status=502),
    )
    assert api.upsert_item(_item("retried")) == "created"
    assert waits[0] == 3.0  # Retry-After honoured
    assert len(waits) == 4 and all(0.1 <= w <= 1.0 for w in waits[1:])  # jittered, capped
    assert StacApi(url=proxy.url).get_item("omdoao3e", "retried") is not None


def test_retries_are_bounded_and_the_error_says_what_to_do(proxy, waits):
    api = StacApi(url=proxy.url, max_attempts=3)
    proxy.fail(*[ProxyFault(status=500)] * 3)
    with pytest.raises(StacApiError, match=r"failed 3 times.*HTTP 500.*COG_ASSETS_STAC_API_URL"):
        api.get_collection("omdoao3e")
    assert len(waits) == 2


def test_unreachable_api_fails_after_bounded_retries(waits):
    api = StacApi(url=f"http://127.0.0.1:{free_port()}", max_attempts=2)
    with pytest.raises(StacApiError, match=r"failed 2 times.*ConnectError"):
        api.get_collection("omdoao3e")


def test_token_is_sent_as_bearer(proxy):
    StacApi(url=proxy.url, token="stac-secret-123", insecure_testing_origins=["http://127.0.0.1"]).get_collection("omdoao3e")
    assert proxy.requests[-1]["headers"].get("Authorization") == "Bearer stac-secret-123"


def test_ensure_collection_widens_extent_to_cover_items(stac_api_url, datasets):
    api = StacApi(url=stac_api_url)
    payload = collection_payload(datasets["omdoao3e"])  # starts 2004-10-01, open-ended, global
    early = _item("early", day="2003-05-01")
    api.ensure_collection(payload, [early])
    interval = api.get_collection("omdoao3e")["extent"]["temporal"]["interval"][0]
    assert interval[0].startswith("2003-05-01") and interval[1] is None
    api.ensure_collection(payload, [_item("later", day="2020-01-01")])
    assert api.get_collection("omdoao3e")["extent"]["temporal"]["interval"][0][0].startswith("2003-05-01")
    # refreshing the collection's metadata keeps the widened extent
    api.upsert_collection(payload, keep_extent=True)
    assert api.get_collection("omdoao3e")["extent"]["temporal"]["interval"][0][0].startswith("2003-05-01")


def test_covering_extent_widens_bbox_and_interval():
    collection = {"extent": {"spatial": {"bbox": [[0, 0, 10, 10]]}, "temporal": {"interval": [["2020-01-01T00:00:00Z", "2020-12-31T00:00:00Z"]]}}}
    assert covering_extent(collection, [_item("in", day="2020-06-01", bbox=(1, 1, 2, 2))]) is None
    widened = covering_extent(collection, [_item("out", day="2021-02-01", bbox=(-5, 1, 2, 12))])
    assert widened["spatial"]["bbox"][0] == [-5, 0, 10, 12]
    assert widened["temporal"]["interval"][0] == ["2020-01-01T00:00:00Z", "2021-02-01T23:59:59Z"]


@pytest.mark.parametrize(
    ("policy", "held", "new", "expected"),
    [
        (DuplicatePolicy(), None, 1, "create"),
        (DuplicatePolicy(), 1, 1, "skip"),
        (DuplicatePolicy(), 1, 2, "replace"),
        (DuplicatePolicy(same_revision="replace"), 2, 2, "replace"),
        (DuplicatePolicy(new_revision="skip"), 1, 2, "skip"),
        (DuplicatePolicy(same_revision="error"), 2, 2, DuplicateItemError),
        (DuplicatePolicy(new_revision="error"), 1, 2, DuplicateItemError),
        (DuplicatePolicy(same_revision="replace", new_revision="replace"), 3, 2, DuplicateItemError),
    ],
)
def test_duplicate_policy(policy, held, new, expected):
    existing = None if held is None else _item("x", revision=held)
    if isinstance(expected, str):
        assert decide(policy, "x", new, existing).action == expected
    else:
        with pytest.raises(expected, match="item x"):
            decide(policy, "x", new, existing)


def test_disabled_api_refuses_with_the_setting_to_change():
    api = StacApi()
    assert not api.enabled
    with pytest.raises(StacApiError, match="COG_ASSETS_STAC_API_URL"):
        api.publish_item(_item("x"), Decision("create", "test"))


def test_one_request_at_a_time_per_resource(monkeypatch):
    """A run's granule threads share the resource: the API still sees one request at a time
    from the step (its pool slot), as the README's limits promise."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    busy, most, lock = [0], [0], threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        time.sleep(0.05)  # a slow API, not synchronisation
        with lock:
            busy[0] -= 1
        return httpx.Response(404, json={"code": "NotFoundError"})

    api = StacApi(url="https://stac.example.org")
    monkeypatch.setattr(StacApi, "_client", lambda self: httpx.Client(base_url=self.url, transport=httpx.MockTransport(answer)))
    with ThreadPoolExecutor(4) as threads:
        assert list(threads.map(lambda n: api.get_item("omdoao3e", f"item{n}"), range(8))) == [None] * 8
    assert most[0] == 1
