from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from cog_assets.sources.cmr import client as cmr_module
from cog_assets.sources.cmr.client import CmrClient, CmrError, query_params

from .cmr_server import Fault
from .helpers import add_omi_days


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(cmr_module, "wait", recorded.append)
    return recorded


@pytest.fixture
def omi(datasets):
    return datasets["omdoao3e"]


def test_pages_across_three_pages_with_search_after(fake_cmr, omi):
    add_omi_days(fake_cmr, omi, datetime(2010, 1, 1, tzinfo=timezone.utc), 25)
    client = CmrClient(base_url=fake_cmr.url, page_size=10)
    pages = list(client.iter_pages(omi.cmr))
    assert [len(p.records) for p in pages] == [10, 10, 5]
    assert pages[0].hits == 25
    concept_ids = [r.concept_id for p in pages for r in p.records]
    assert len(set(concept_ids)) == 25
    searches = list(fake_cmr.searches())
    assert "CMR-Search-After" not in searches[0]["headers"]
    assert searches[1]["headers"]["CMR-Search-After"] == pages[0].search_after
    assert searches[2]["headers"]["CMR-Search-After"] == pages[1].search_after
    # identical parameters on every page, no page_num or scroll
    assert searches[0]["params"] == searches[1]["params"] == searches[2]["params"]
    assert not any(name in ("page_num", "scroll") for name, _ in searches[0]["params"])


def test_query_parameters(omi):
    params = query_params(omi.cmr, 2000, revision_since=datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert ("short_name", "OMDOAO3e") in params and ("version", "003") in params
    assert ("provider", "GES_DISC") in params and ("page_size", "2000") in params
    assert ("temporal[]", "2004-10-01T00:00:00Z,") in params
    assert ("revision_date[]", "2024-01-01T00:00:00.000Z,") in params
    assert ("sort_key[]", "revision_date") in params


def test_429_then_success_waits_as_told(fake_cmr, omi, waits):
    add_omi_days(fake_cmr, omi, datetime(2010, 1, 1, tzinfo=timezone.utc), 3)
    fake_cmr.fail_search(Fault(status=429, retry_after="7"), Fault(status=429, retry_after="2"))
    pages = list(CmrClient(base_url=fake_cmr.url).iter_pages(omi.cmr))
    assert waits == [7.0, 2.0]
    assert sum(len(p.records) for p in pages) == 3


def test_5xx_then_success_backs_off(fake_cmr, omi, waits):
    add_omi_days(fake_cmr, omi, datetime(2010, 1, 1, tzinfo=timezone.utc), 3)
    fake_cmr.fail_search(Fault(status=500), Fault(status=503), Fault(status=502))
    client = CmrClient(base_url=fake_cmr.url, backoff_seconds=1.0, max_backoff_seconds=3.0)
    pages = list(client.iter_pages(omi.cmr))
    assert sum(len(p.records) for p in pages) == 3
    assert len(waits) == 3
    # jittered exponential backoff within [ceiling/2, ceiling], capped
    for attempt, waited in enumerate(waits):
        ceiling = min(3.0, 1.0 * 2**attempt)
        assert ceiling / 2 <= waited <= ceiling


def test_persistent_5xx_gives_up_with_the_cause(fake_cmr, omi, waits):
    fake_cmr.fail_search(*[Fault(status=503)] * 5)
    with pytest.raises(CmrError, match=r"failed 5 times.*HTTP 503: injected fault 503"):
        list(CmrClient(base_url=fake_cmr.url).iter_pages(omi.cmr))
    assert len(waits) == 4


def test_400_surfaces_cmr_message(fake_cmr):
    client = CmrClient(base_url=fake_cmr.url)
    with httpx.Client(base_url=fake_cmr.url) as http:
        with pytest.raises(CmrError, match=r"HTTP 400: page_size must be a number between 0 and 2000"):
            client.search_page(http, [("short_name", "X"), ("page_size", "5000")])
        with pytest.raises(CmrError, match=r"Parameter \[page_num\] was not recognized"):
            client.search_page(http, [("page_num", "2")])


def test_timed_out_partial_results_are_an_error(fake_cmr, omi, waits):
    add_omi_days(fake_cmr, omi, datetime(2010, 1, 1, tzinfo=timezone.utc), 4)
    fake_cmr.fail_search(Fault(status=200, timed_out=True))
    with pytest.raises(CmrError, match="timed out.*partial results"):
        list(CmrClient(base_url=fake_cmr.url).iter_pages(omi.cmr))


def test_request_timeout_is_retried(fake_cmr, omi, waits):
    add_omi_days(fake_cmr, omi, datetime(2010, 1, 1, tzinfo=timezone.utc), 2)
    fake_cmr.fail_search(Fault(status=200, delay=1.5))
    client = CmrClient(base_url=fake_cmr.url, timeout_seconds=0.5)
    pages = list(client.iter_pages(omi.cmr))
    assert sum(len(p.records) for p in pages) == 2
    assert len(waits) == 1


def test_connection_refused_is_an_error_naming_the_url(omi, waits):
    from .services import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CmrError, match=rf"CMR at {url} failed 3 times.*ConnectError"):
        list(CmrClient(base_url=url, max_attempts=3).iter_pages(omi.cmr))


def test_malformed_json_is_an_error(fake_cmr, omi, waits):
    fake_cmr.fail_search(Fault(status=200, body=b"{not json"))
    # a 200 fault with a body is served as-is
    with pytest.raises(CmrError, match="not a granules.umm_json result"):
        list(CmrClient(base_url=fake_cmr.url).iter_pages(omi.cmr))


def test_granule_lookup_by_concept_id(fake_cmr, omi):
    add_omi_days(fake_cmr, omi, datetime(2010, 1, 1, tzinfo=timezone.utc), 5)
    target = list(fake_cmr._granules)[3]
    record = CmrClient(base_url=fake_cmr.url).granule(omi.cmr, target)
    assert record.concept_id == target
    with pytest.raises(CmrError, match="G9-GES_DISC is not in CMR"):
        CmrClient(base_url=fake_cmr.url).granule(omi.cmr, "G9-GES_DISC")
