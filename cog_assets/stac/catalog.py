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


def _up(levels: int, name: str) -> str:
    return "../" * levels + name


def sub_catalogs(dataset_id: str, refs: list[ItemRef]) -> dict[str, dict[str, Any]]:
    """Every year, month (and, for crowded months, day) catalog, by key under the dataset."""
    out: dict[str, dict[str, Any]] = {}
    by_year: dict[str, dict[str, list[ItemRef]]] = defaultdict(lambda: defaultdict(list))
    for ref in refs:
        by_year[ref.year][ref.month].append(ref)
    for year, months in by_year.items():
        out[f"items/{year}/catalog.json"] = _catalog(
            f"{dataset_id}-{year}", f"{dataset_id} {year}",
            _structure(2, "catalog.json")
            + [{"rel": "child", "href": f"./{month}/catalog.json", "type": JSON} for month in sorted(months)],
        )
        for month, items in months.items():
            out.update(_month(dataset_id, year, month, items))
    return out


def _structure(depth: int, parent: str) -> list[dict[str, str]]:
    """root, parent and collection links from a catalog ``depth`` folders below the dataset."""
    return [
        {"rel": "root", "href": _up(depth + 1, "catalog.json"), "type": JSON},
        {"rel": "parent", "href": f"../{parent}" if parent != "catalog.json" else _up(depth, "collection.json"), "type": JSON},
        {"rel": "collection", "href": _up(depth, "collection.json"), "type": JSON},
    ]


def _month(dataset_id: str, year: str, month: str, items: list[ItemRef]) -> dict[str, dict[str, Any]]:
    name = f"{dataset_id} {year}-{month}"
    base = _structure(3, "catalog.json")
    base[1] = {"rel": "parent", "href": "../catalog.json", "type": JSON}
    if len(items) <= MAX_LINKS:
        links = base + [{"rel": "item", "href": ref.href, "type": "application/geo+json"} for ref in items]
        return {f"items/{year}/{month}/catalog.json": _catalog(f"{dataset_id}-{year}-{month}", name, links)}
    chunks = [items[i : i + MAX_LINKS] for i in range(0, len(items), MAX_LINKS)]
    out = {
        f"items/{year}/{month}/catalog.json": _catalog(
            f"{dataset_id}-{year}-{month}", name,
            base + [{"rel": "child", "href": f"./part-{n}/catalog.json", "type": JSON} for n in range(len(chunks))],
        )
    }
    for n, chunk in enumerate(chunks):
        links = _structure(4, "catalog.json")
        links[1] = {"rel": "parent", "href": "../catalog.json", "type": JSON}
        links += [{"rel": "item", "href": f"../{ref.item_id}.json", "type": "application/geo+json"} for ref in chunk]
        out[f"items/{year}/{month}/part-{n}/catalog.json"] = _catalog(f"{dataset_id}-{year}-{month}-{n}", f"{name} ({n + 1})", links)
    return out


def collection_links(refs: list[ItemRef]) -> list[dict[str, str]]:
    """The collection's links: root and parent (the root catalog), one child per year."""
    years = sorted({ref.year for ref in refs})
    return [
        {"rel": "root", "href": "../catalog.json", "type": JSON},
        {"rel": "parent", "href": "../catalog.json", "type": JSON},
    ] + [{"rel": "child", "href": f"./items/{year}/catalog.json", "type": JSON} for year in years]


def item_links() -> list[dict[str, str]]:
    """A stored item's links: its month catalog, the collection and the root."""
    return [
        {"rel": "collection", "href": "../../../collection.json", "type": JSON},
        {"rel": "parent", "href": "./catalog.json", "type": JSON},
        {"rel": "root", "href": "../../../../catalog.json", "type": JSON},
    ]
