"""Every real CMR response in cog_assets_tests/fixtures parses, through the real client where recorded."""

from __future__ import annotations

import json

import httpx
import pytest

from cog_assets.sources.cmr.client import CmrClient, CmrError
from cog_assets.sources.cmr.records import parse_umm_item

from .granule_files import FIXTURES

CMR_FIXTURES = FIXTURES / "cmr"


def _umm_bodies() -> list[tuple[str, dict]]:
    bodies = []
    for path in sorted(CMR_FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        if "interactions" in data:
            for i, interaction in enumerate(data["interactions"]):
                if "granules.umm_json" in interaction["request"]["uri"]:
                    bodies.append((f"{path.name}#{i}", interaction["response"]["body"]))
        elif "items" in data:
            bodies.append((path.name, data))
    return bodies


@pytest.mark.parametrize("name,body", _umm_bodies(), ids=[n for n, _ in _umm_bodies()])
def test_every_umm_json_fixture_parses(name, body):
    for item in body["items"]:
        record = parse_umm_item(item)
        assert record.concept_id == item["meta"]["concept-id"]
        assert record.revision_id == item["meta"]["revision-id"]
        assert record.revision_date == item["meta"]["revision-date"]
        assert record.granule_ur == item["umm"]["GranuleUR"]
        assert record.begin is not None and record.end is not None and record.begin <= record.end
        assert record.bbox is not None and record.geometry is not None
        w, s, e, n = record.bbox
        # STAC/GeoJSON: west > east only when the footprint crosses the antimeridian (then cut)
        assert -180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= n <= 90
        assert w <= e or record.geometry["type"] == "MultiPolygon"
        assert record.data_url and record.data_url.startswith("https://")
        assert record.file_name and record.file_name in record.data_url
        assert all(url.startswith("s3://") for url in record.s3_urls)


def test_gesdisc_gpm_record_fields():
    body = json.loads((CMR_FIXTURES / "earthaccess__GPM_3IMERGHH_G1618495041-GES_DISC__granules.umm_json.json").read_text())
    record = parse_umm_item(body["items"][0])
    assert record.concept_id == "G1618495041-GES_DISC"
    assert record.revision_id == 3
    assert record.file_name == "3B-HHR.MS.MRG.3IMERG.20190220-S000000-E002959.0000.V06B.HDF5"
    assert record.item_id == "3B-HHR.MS.MRG.3IMERG.20190220-S000000-E002959.0000.V06B"
    assert record.bbox == (-180.0, -90.0, 180.0, 90.0)
    assert record.begin.isoformat() == "2019-02-20T00:00:00+00:00"
    assert record.end.isoformat() == "2019-02-20T00:29:59.999000+00:00"
    assert record.s3_urls[0].startswith("s3://gesdisc-cumulus-prod-protected/")
    assert record.size_bytes is None and record.approx_size_bytes == int(10.07326889038086 * 1024**2)
    assert record.checksum is None


def test_multi_file_granule_picks_pattern_and_its_checksum():
    body = json.loads((CMR_FIXTURES / "earthaccess__TELLUS_GRAC_L3_JPL_RL06_LND_v04__granules.umm_json__body_3items.json").read_text())
    record = parse_umm_item(body["items"][0], data_url_pattern=r"\.nc$")
    assert record.file_name == "GRD-3_2002094-2002120_GRAC_JPLEM_BA01_0600_LND_v04.nc"
    assert (record.size_bytes, record.checksum, record.checksum_algorithm) == (
        1098347, "cdb8ba3cff9617e88b3da89b5c84dc25", "md5"
    )
    # two rectangles either side of the antimeridian: the bbox covers both, across it
    assert record.bbox == (0.5, -89.5, -0.5, 89.5)
    tif = parse_umm_item(body["items"][0], data_url_pattern=r"\.tif$")
    assert tif.size_bytes == 525128


def test_gpolygon_footprint_becomes_bbox():
    data = json.loads((CMR_FIXTURES / "python_cmr__MOD02QKM__granules.umm_json__search_after_chain.json").read_text())
    record = parse_umm_item(data["interactions"][0]["response"]["body"]["items"][0])
    # its four vertices wind once round the north pole: the footprint holds the pole, so the
    # bbox spans every longitude and reaches 90°N (the vertices' own box missed it)
    assert record.bbox == (-180.0, 66.835767, 180.0, 90.0)
    assert record.checksum_algorithm == "md5" and record.size_bytes == 27984421


def _replay(interactions: list[dict], seen: list[httpx.Request]) -> httpx.MockTransport:
    """Answer each request with the next recorded response, headers and body as recorded."""
    queue = list(interactions)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        recorded = queue.pop(0)["response"]
        headers = {k: v for k, v in recorded["headers"].items() if k.lower() not in ("content-length", "transfer-encoding", "content-md5")}
        return httpx.Response(recorded["status"], headers=headers, content=json.dumps(recorded["body"]).encode())

    return httpx.MockTransport(handler)


def test_client_follows_recorded_search_after_chain(monkeypatch, datasets):
    data = json.loads((CMR_FIXTURES / "python_cmr__MOD02QKM__granules.umm_json__search_after_chain.json").read_text())
    interactions = data["interactions"]
    seen: list[httpx.Request] = []
    transport = _replay(interactions, seen)
    client = CmrClient(base_url="https://cmr.example", page_size=2)
    monkeypatch.setattr(CmrClient, "_client", lambda self: httpx.Client(base_url=self.base_url, transport=transport))
    pages = client.iter_pages(datasets["omdoao3e"].cmr)
    got = [next(pages) for _ in range(3)]
    assert [len(p.records) for p in got] == [2, 2, 2]
    assert got[0].hits == 1404440
    # the response header is sent back unchanged as the next request's header
    for request, previous in zip(seen[1:], interactions[:-1]):
        assert request.headers["CMR-Search-After"] == previous["response"]["headers"]["CMR-Search-After"]
        assert request.headers["CMR-Search-After"] == interactions[seen.index(request)]["request"]["headers"]["cmr-search-after"]
    assert "CMR-Search-After" not in seen[0].headers


@pytest.mark.parametrize(
    "fixture",
    [
        "python_cmr__TELLUS_GRAC_L3_JPL_RL06_LND_v04__granules.json__recording.json",
        "python_cmr__HLSL30_C2021957657-LPCLOUD__granules.stac__recording.json",
    ],
)
def test_non_umm_formats_get_a_clear_error(monkeypatch, datasets, fixture):
    data = json.loads((CMR_FIXTURES / fixture).read_text())
    transport = _replay(data["interactions"][-1:], [])
    monkeypatch.setattr(CmrClient, "_client", lambda self: httpx.Client(base_url=self.base_url, transport=transport))
    with pytest.raises(CmrError, match="not a granules.umm_json result"):
        list(CmrClient(base_url="https://cmr.example").iter_pages(datasets["omdoao3e"].cmr))


def test_zero_hits_recording_has_no_search_after_and_ends_paging(monkeypatch, datasets):
    data = json.loads((CMR_FIXTURES / "python_cmr__MOD09GA_061__granules.json__zero_hits_recording.json").read_text())
    response = data["interactions"][0]["response"]
    assert response["headers"]["CMR-Hits"] == "0" and "CMR-Search-After" not in response["headers"]
    body = {"hits": 0, "took": 5, "items": []}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers={"CMR-Hits": "0"}, json=body))
    monkeypatch.setattr(CmrClient, "_client", lambda self: httpx.Client(base_url=self.base_url, transport=transport))
    assert list(CmrClient(base_url="https://cmr.example").iter_pages(datasets["omdoao3e"].cmr)) == []


@pytest.mark.parametrize(
    "url", ["https://data.example/x/..", "https://data.example/x/bad%20name%E2%80%94.he5", "https://data.example/x/a,b.he5"]
)
def test_unsafe_file_name_is_kept_out_of_storage(url):
    body = json.loads((CMR_FIXTURES / "earthaccess__GPM_3IMERGHH_G1618495041-GES_DISC__granules.umm_json.json").read_text())
    item = json.loads(json.dumps(body["items"][0]))
    item["umm"]["RelatedUrls"][0]["URL"] = url
    record = parse_umm_item(item)
    assert record.file_name is None
    with pytest.raises(ValueError, match="not a plain file name"):
        record.require_file_name()


def test_path_in_url_never_reaches_the_file_name():
    body = json.loads((CMR_FIXTURES / "earthaccess__GPM_3IMERGHH_G1618495041-GES_DISC__granules.umm_json.json").read_text())
    item = json.loads(json.dumps(body["items"][0]))
    item["umm"]["RelatedUrls"][0]["URL"] = "https://data.example/x/..%2F..%2Fetc%2Fpasswd"
    assert parse_umm_item(item).file_name == "passwd"


def test_non_granule_concept_id_is_rejected():
    body = json.loads((CMR_FIXTURES / "earthaccess__GPM_3IMERGHH_G1618495041-GES_DISC__granules.umm_json.json").read_text())
    item = json.loads(json.dumps(body["items"][0]))
    item["meta"]["concept-id"] = "G1,../x"
    with pytest.raises(ValueError, match="cannot be a partition key"):
        parse_umm_item(item)


def test_fixtures_are_inside_the_repository():
    """The recorded CMR responses ship with the tests: a fresh clone needs nothing beside it."""
    from pathlib import Path

    repository = Path(__file__).resolve().parents[1]
    assert repository in CMR_FIXTURES.resolve().parents
    assert len(_umm_bodies()) >= 6
