"""A STAC collection's extent, widened to cover the items published into it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cog_assets.stac.footprint import union_bbox


def _interval(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def covering_extent(collection: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The collection's extent widened to cover ``items``; None when it already does."""
    extent = collection["extent"]
    bbox = list(extent["spatial"]["bbox"][0])
    start, end = (_interval(v) for v in extent["temporal"]["interval"][0])
    changed = False
    for item in items:
        ib = item.get("bbox")
        if ib:
            widened = list(union_bbox(tuple(bbox), tuple(ib)))  # type: ignore[arg-type]
            changed |= widened != bbox
            bbox = widened
        props = item["properties"]
        first = _interval(props.get("start_datetime") or props.get("datetime"))
        last = _interval(props.get("end_datetime") or props.get("datetime"))
        if first and start and first < start:
            start, changed = first, True
        if last and end and last > end:
            end, changed = last, True
    if not changed:
        return None
    iso = lambda v: v.strftime("%Y-%m-%dT%H:%M:%SZ") if v else None  # noqa: E731
    return {
        "spatial": {"bbox": [bbox, *extent["spatial"]["bbox"][1:]]},
        "temporal": {"interval": [[iso(start), iso(end)], *extent["temporal"]["interval"][1:]]},
    }


def extent_as_item(extent: dict[str, Any]) -> dict[str, Any]:
    """An extent's first bbox and interval in the shape ``covering_extent`` reads from items."""
    start, end = extent["temporal"]["interval"][0]
    return {"bbox": extent["spatial"]["bbox"][0], "properties": {"start_datetime": start, "end_datetime": end}}
