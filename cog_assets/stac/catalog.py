"""The static STAC catalog in storage, walkable by pystac at any size.

Items live at ``<dataset>/items/<YYYY>/<MM>/<item>.json`` (their data's UTC month). The
collection links one sub-catalog per year, each year one per month, each month its items; a
month with more items than ``MAX_LINKS`` is split into days. So no JSON file holds more than
about 10,000 links, whatever the size of the dataset (GPM IMERG: ~1,490 items a month).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pystac

MAX_LINKS = 10_000
JSON = "application/json"


@dataclass(frozen=True)
class ItemRef:
    """An item as a listing shows it: ``<dataset>/items/<YYYY>/<MM>/<id>.json``."""

    year: str
    month: str
    item_id: str

    @property
    def href(self) -> str:
        """Relative to the month's folder."""
        return f"./{self.item_id}.json"


def item_refs(dataset_id: str, keys: Iterable[str]) -> list[ItemRef]:
    prefix = f"{dataset_id}/items/"
    refs = []
    for key in keys:
        parts = key[len(prefix):].split("/") if key.startswith(prefix) else []
        if len(parts) == 3 and parts[2].endswith(".json") and parts[2] != "catalog.json":
            refs.append(ItemRef(parts[0], parts[1], parts[2][: -len(".json")]))
    return sorted(refs, key=lambda r: (r.year, r.month, r.item_id))


def _catalog(catalog_id: str, title: str, links: list[dict[str, str]]) -> dict[str, Any]:
    payload = pystac.Catalog(id=catalog_id, description=title, title=title).to_dict(
        include_self_link=False, transform_hrefs=False
    )
    payload["links"] = links
    return payload


def _links(depth: int) -> list[dict[str, str]]:
    """root, parent and collection links of a sub-catalog ``depth`` folders below the dataset
    (a year is 2 deep: items/<YYYY>/; its parent is the collection, the others' the folder above)."""
    up = "../" * depth
    parent = f"{up}collection.json" if depth == 2 else "../catalog.json"
    return [
        {"rel": "root", "href": f"../{up}catalog.json", "type": JSON},
        {"rel": "parent", "href": parent, "type": JSON},
        {"rel": "collection", "href": f"{up}collection.json", "type": JSON},
    ]


def _children(names: Iterable[str]) -> list[dict[str, str]]:
    return [{"rel": "child", "href": f"./{name}/catalog.json", "type": JSON} for name in names]


def _items(hrefs: Iterable[str]) -> list[dict[str, str]]:
    return [{"rel": "item", "href": href, "type": "application/geo+json"} for href in hrefs]


def sub_catalogs(dataset_id: str, refs: list[ItemRef]) -> dict[str, dict[str, Any]]:
    """Every year, month (and, for crowded months, part) catalog, by key under the dataset."""
    out: dict[str, dict[str, Any]] = {}
    by_year: dict[str, dict[str, list[ItemRef]]] = defaultdict(lambda: defaultdict(list))
    for ref in refs:
        by_year[ref.year][ref.month].append(ref)
    for year, months in by_year.items():
        out[f"items/{year}/catalog.json"] = _catalog(f"{dataset_id}-{year}", f"{dataset_id} {year}", _links(2) + _children(sorted(months)))
        for month, items in months.items():
            out.update(_month(dataset_id, year, month, items))
    return out


def _month(dataset_id: str, year: str, month: str, items: list[ItemRef]) -> dict[str, dict[str, Any]]:
    """A month's catalog linking its items, or parts of at most MAX_LINKS items each."""
    name, folder = f"{dataset_id} {year}-{month}", f"items/{year}/{month}"
    if len(items) <= MAX_LINKS:
        links = _links(3) + _items(ref.href for ref in items)
        return {f"{folder}/catalog.json": _catalog(f"{dataset_id}-{year}-{month}", name, links)}
    parts = [items[i : i + MAX_LINKS] for i in range(0, len(items), MAX_LINKS)]
    out = {f"{folder}/catalog.json": _catalog(f"{dataset_id}-{year}-{month}", name, _links(3) + _children(f"part-{n}" for n in range(len(parts))))}
    for n, part in enumerate(parts):
        links = _links(4) + _items(f"../{ref.item_id}.json" for ref in part)
        out[f"{folder}/part-{n}/catalog.json"] = _catalog(f"{dataset_id}-{year}-{month}-{n}", f"{name} ({n + 1})", links)
    return out


def collection_links(refs: list[ItemRef]) -> list[dict[str, str]]:
    """The collection's links: root and parent (the root catalog), one child per year."""
    years = sorted({ref.year for ref in refs})
    return [
        {"rel": "root", "href": "../catalog.json", "type": JSON},
        {"rel": "parent", "href": "../catalog.json", "type": JSON},
    ] + _children(f"items/{year}" for year in years)


def item_links() -> list[dict[str, str]]:
    """A stored item's links: its month catalog, the collection and the root."""
    return [
        {"rel": "collection", "href": "../../../collection.json", "type": JSON},
        {"rel": "parent", "href": "./catalog.json", "type": JSON},
        {"rel": "root", "href": "../../../../catalog.json", "type": JSON},
    ]
