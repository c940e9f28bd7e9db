"""An AOI's statistics table (one row per COG) and what a sync has to recompute in it.

A row is reused when its COG, its AOI geometry and the analysis version are all the ones it
was computed from; any change to one of them (a CMR revision, an edited AOI file, a new
``analysis.version``) recomputes it. A row whose granule is no longer live is dropped: the table
always describes exactly the COGs stored now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from cog_assets.analysis.aoi import Aoi
from cog_assets.analysis.cogs import CogRef

_TIME = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("aoi_id", pa.string()),
        ("item_id", pa.string()),
        ("concept_id", pa.string()),
        ("start_datetime", _TIME),
        ("end_datetime", _TIME),
        ("mean", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("stddev", pa.float64()),
        ("median", pa.float64()),
        ("valid_pixels", pa.int64()),
        ("coverage", pa.float64()),
        ("aoi_area_km2", pa.float64()),
        ("analysis_version", pa.string()),
        ("cog_uri", pa.string()),
        ("cog_version", pa.string()),
        ("aoi_sha256", pa.string()),
        ("computed_at", _TIME),
    ]
)


def row_key(cog: CogRef) -> str:
    """A granule's identity across revisions (its COG's URI and checksum change; this not)."""
    return cog.concept_id or cog.item_id or cog.uri


@dataclass
class SyncPlan:
    """For one AOI: rows kept as they are, COGs to compute, rows that go."""

    kept: list[dict[str, Any]] = field(default_factory=list)
    todo: list[CogRef] = field(default_factory=list)
    removed: int = 0


def plan_sync(previous: pa.Table | None, cogs: Sequence[CogRef], aoi: Aoi, version: str) -> SyncPlan:
    old = {r["concept_id"] or r["item_id"] or r["cog_uri"]: r for r in (previous.to_pylist() if previous else [])}
    plan = SyncPlan()
    live = set()
    for cog in cogs:
        key = row_key(cog)
        live.add(key)
        row = old.get(key)
        current = (cog.version, aoi.sha256, version)
        if row is not None and (row["cog_version"], row["aoi_sha256"], row["analysis_version"]) == current:
            plan.kept.append(row)
        else:
            plan.todo.append(cog)
    plan.removed = len(set(old) - live)
    return plan


def new_row(aoi: Aoi, cog: CogRef, statistics: dict[str, Any], version: str, now: datetime) -> dict[str, Any]:
    return {
        "aoi_id": aoi.id,
        "item_id": cog.item_id,
        "concept_id": cog.concept_id,
        "start_datetime": cog.datetime,
        "end_datetime": cog.end_datetime,
        **statistics,
        "analysis_version": version,
        "cog_uri": cog.uri,
        "cog_version": cog.version,
        "aoi_sha256": aoi.sha256,
        "computed_at": now,
    }


def build_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Rows in data-time order (undated last), as the stored schema."""
    ordered = sorted(rows, key=lambda r: (r["start_datetime"] is None, r["start_datetime"] or 0, r["item_id"]))
    return pa.Table.from_pylist(ordered, schema=SCHEMA)
