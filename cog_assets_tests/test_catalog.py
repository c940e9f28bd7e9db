"""The static catalog: walkable by pystac at any size, and kept current without clicking."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pystac
from dagster import RunRequest, SkipReason, build_sensor_context, materialize

from cog_assets.stac.catalog import MAX_LINKS
from cog_assets.stac.items import build_collection
from cog_assets.store.archive import Archive, dumps

from .granule_files import make_omi_granule, omi_values
from .helpers import Platform, add_omi_granule, failure_messages

FIRST = datetime(2019, 1, 1, tzinfo=timezone.utc)


def _fake_item(dataset_id: str, n: int, when: datetime) -> dict:
    item = pystac.Item(id=f"granule-{n:06d}", geometry=None, bbox=None, datetime=when, properties={}, collection=dataset_id)
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def test_pystac_walks_every_item_of_a_20000_item_catalog(tmp_path, datasets):
    dataset = datasets["omdoao3e"]
    archive = Archive(storage_url=(tmp_path / "s").as_uri())
    root = tmp_path / "s" / "omdoao3e" / "items"
    crowded = FIRST.replace(month=3)
    for n in range(20_000):  # 12,000 in March 2019 (more than one file may link), the rest spread
        when = crowded + timedelta(minutes=3 * n) if n < 12_000 else FIRST + timedelta(hours=5 * n)
        folder = root / f"{when:%Y}" / f"{when:%m}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"granule-{n:06d}.json").write_bytes(dumps(_fake_item("omdoao3e", n, when)))
    _, linked = archive.put_collection("omdoao3e", build_collection(dataset))
    assert linked == 20_000

    catalog = pystac.Catalog.from_file(str(tmp_path / "s" / "catalog.json"))
    collection = catalog.get_child("omdoao3e")
    ids = {item.id for item in collection.get_items(recursive=True)}
    assert len(ids) == 20_000
    largest = max(
        sum(link["rel"] in ("item", "child") for link in json.loads(p.read_text())["links"])
        for p in (tmp_path / "s").rglob("*.json") if p.name in ("catalog.json", "collection.json")
    )
    assert largest <= MAX_LINKS


def test_the_catalog_follows_runs_and_withdrawals_with_one_writer(fake_cmr, datasets, instance, local_storage_url):
    platform = Platform(datasets["omdoao3e"], fake_cmr, local_storage_url, instance)
    sensor = platform.defs.catalog_sensor
    tick = lambda: sensor(build_sensor_context(instance=instance))  # noqa: E731
    assert isinstance(tick(), SkipReason)  # nothing yet
    granules = [add_omi_granule(fake_cmr, make_omi_granule(omi_values(seed=n)).content, FIRST + timedelta(days=n)) for n in range(2)]
    for granule in granules:
        assert platform.run(granule.concept_id).success
    request = tick()
    assert isinstance(request, RunRequest) and request.job_name == "omdoao3e_collection_job"
    assert request.tags == {"cog_assets/catalog_writer": "omdoao3e"}
    assert materialize([platform.built.stac_collection], resources=platform.resources(), instance=instance).success
    assert isinstance(tick(), SkipReason)  # current
    collection = pystac.Collection.from_file(str(Path(local_storage_url[len("file://"):]) / "omdoao3e" / "collection.json"))
    assert {i.id for i in collection.get_items(recursive=True)} == {g.file_name[:-4] for g in granules}

    fake_cmr.delete(granules[0].concept_id)
    platform.tick()  # switched on: history is registered; the deletion is seen on the next tick
    result = platform.tick()
    for outcome in platform.execute(result):
        assert outcome.success, failure_messages(outcome)
    assert isinstance(tick(), RunRequest)  # a withdrawal changed the items
