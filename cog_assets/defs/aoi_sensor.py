"""``aoi_sensor``: registers AOI files as ``aois`` partitions and keeps their statistics in sync.

Each tick (every 30 s; on by default, since it only reads the AOI folder and the event log):

- every new or edited AOI file is validated alone: a bad one gets ``invalid`` with the reason and
  never stops the others; a good one becomes (or stays) a partition, ``pending``, and one run per
  dataset computes all AOIs registered in the tick together;
- a removed (or now invalid) file's partition is deleted: it is no longer synced, its tables stay;
- when a dataset's stored COGs change (a new or revised COG is materialized, a withdrawn
  granule's partition is deleted, ``analysis.version`` changes), one run syncs every AOI of that
  dataset; unmaterialized history changes nothing, so registering it triggers nothing;
- statuses follow the materializations: ``pending`` → ``saved`` with row counts once every
  dataset's statistics exist, and the counts are refreshed after each sync.

The decisions are plain functions over the cursor; the sensor only gathers facts and applies.
"""


import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from cog_assets.analysis.aoi import AOI_SUFFIX, AoiError, parse_aoi
from cog_assets.dataset import DatasetConfig
from cog_assets.defs.aoi_statistics import AOIS, statistics_key
from cog_assets.defs.aois import AoiFolder
from cog_assets.store.objects import StorageError

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
SENSOR_INTERVAL_SECONDS = 30


@dataclass
class AoiState:
    file_sha256: str
    pending: bool = True
    requested: dict[str, int] = field(default_factory=dict)  # latest storage id when (re)registered
    seen: dict[str, int] = field(default_factory=dict)  # storage ids the status file reports


@dataclass
class AoiCursor:
    aois: dict[str, AoiState] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of the bad bytes
    cogs: dict[str, str] = field(default_factory=dict)  # dataset -> token of its stored COGs

    @classmethod
    def from_json(cls, text: str | None) -> "AoiCursor":
        if not text:
            return cls()
        raw = json.loads(text)
        return cls({k: AoiState(**v) for k, v in raw["aois"].items()}, raw["invalid"], raw["cogs"])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def cog_token(instance: DagsterInstance, dataset: DatasetConfig) -> str:
    """Changes when the dataset's stored COGs or its analysis version change, and only then."""
    key = AssetKey([dataset.id, "cog"])
    records = instance.fetch_materializations(key, limit=1).records
    latest = records[0].storage_id if records else 0
    live = ""
    if not dataset.by_day:  # a withdrawn granule's partition is deleted: no event says so
        keys = set(instance.get_dynamic_partitions(dataset.partitions_name))
        done = sorted(instance.get_materialized_partitions(key) & keys)
        live = hashlib.sha256("\n".join(done).encode()).hexdigest()[:16]
    return f"{dataset.analysis.version}:{latest}:{live}"


def scan_files(folder: AoiFolder, cursor: AoiCursor, log: Any) -> tuple[list[str], list[str], set[str]]:
    """Validate new and edited files; returns (AOIs to compute, AOIs to stop syncing, files)."""
    changed, stopped = [], []
    names = set(folder.file_names())
    for name in sorted(names):
        try:
            data = folder.read(name)
        except StorageError as exc:  # vanished between the listing and the read
            log.warning(f"AOI file {name} could not be read: {exc}")
            continue
        sha = hashlib.sha256(data).hexdigest()
        stem = name[: -len(AOI_SUFFIX)]
        if cursor.invalid.get(name) == sha or (stem in cursor.aois and cursor.aois[stem].file_sha256 == sha):
            continue
        try:
            parse_aoi(name, data)
        except Exception as exc:  # noqa: BLE001 (one bad file must never stop the others)
            message = str(exc)
            if not isinstance(exc, AoiError):
                message = f"{name}: not a usable AOI ({type(exc).__name__}: {exc}); fix or remove the file"
            folder.write_status(name, "invalid", message=message)
            log.warning(f"AOI file rejected: {message}")
            cursor.invalid[name] = sha
            if stem in cursor.aois:
                stopped.append(stem)
            continue
        cursor.invalid.pop(name, None)
        cursor.aois[stem] = AoiState(file_sha256=sha)
        changed.append(stem)
    stopped += [a for a in cursor.aois if f"{a}{AOI_SUFFIX}" not in names and a not in stopped]
    cursor.invalid = {n: s for n, s in cursor.invalid.items() if n in names}
    return changed, stopped, names


def plan_runs(
    order: Sequence[str], changed: Sequence[str], tokens: dict[str, str], cursor: AoiCursor
) -> dict[str, list[str]]:
    """The AOIs each dataset's run covers: all of them when its COGs changed, else the changed."""
    runs: dict[str, list[str]] = {}
    for dataset_id, token in tokens.items():
        everything = cursor.cogs.get(dataset_id) != token
        cursor.cogs[dataset_id] = token
        target = [a for a in order if a in cursor.aois and (everything or a in changed)]
        if target:
            runs[dataset_id] = target
    return runs


def run_request(dataset_id: str, order: Sequence[str], target: list[str], token: str) -> RunRequest:
    """One run over the range of partitions spanning ``target`` (in registration order)."""
    first, last = min(target, key=order.index), max(target, key=order.index)
    digest = hashlib.sha256("\n".join(target).encode()).hexdigest()[:12]
    key = statistics_key(dataset_id)
    common = {"asset_selection": [key], "run_key": f"{dataset_id}:{token}:{digest}"}
    if first == last:
        return RunRequest(partition_key=first, **common)
    return RunRequest(tags={RANGE_START: first, RANGE_END: last}, **common)


def _rows(instance: DagsterInstance, dataset_id: str, storage_id: int) -> dict[str, Any]:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=statistics_key(dataset_id), storage_ids=[storage_id]), limit=1
    ).records
    meta = {k: v.value for k, v in records[0].asset_materialization.metadata.items()} if records else {}
    return {"rows": meta.get("dagster/row_count"), "uri": meta.get("uri"), "first": meta.get("first_datetime"),
            "last": meta.get("last_datetime"), "cogs_failed": meta.get("cogs_failed")}


def update_statuses(
    folder: AoiFolder, instance: DagsterInstance, cursor: AoiCursor, latest: dict[str, dict[str, int]]
) -> list[str]:
    """Write ``saved`` (or refreshed counts) where every dataset has materialized since."""
    saved = []
    for aoi, state in cursor.aois.items():
        ids = {ds: per_aoi.get(aoi, 0) for ds, per_aoi in latest.items()}
        if state.pending and not all(ids[ds] > state.requested.get(ds, 0) for ds in ids):
            continue
        if not state.pending and ids == state.seen:
            continue
        details = {ds: _rows(instance, ds, sid) for ds, sid in ids.items()}
        folder.write_status(f"{aoi}{AOI_SUFFIX}", "saved", datasets=details,
                            rows={ds: d["rows"] for ds, d in details.items()})
        state.pending, state.seen = False, ids
        saved.append(aoi)
    return saved


def build_aoi_sensor(datasets: Sequence[DatasetConfig]):
    selection = [statistics_key(d.id) for d in datasets]

    @sensor(
        name="aoi_sensor",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        asset_selection=selection,
        default_status=DefaultSensorStatus.RUNNING,
        description="Registers AOI files (COG_ASSETS_AOIS) as 'aois' partitions, writes their status, "
        "and syncs every dataset's aoi_statistics when AOIs or stored COGs change.",
    )
    def aoi_sensor(context: SensorEvaluationContext, aois: AoiFolder) -> SensorResult:
        instance, cursor = context.instance, AoiCursor.from_json(context.cursor)
        changed, stopped, names = scan_files(aois, cursor, context.log)
        registered = instance.get_dynamic_partitions(AOIS.name)
        for aoi in stopped:
            cursor.aois.pop(aoi, None)
            if f"{aoi}{AOI_SUFFIX}" not in names:
                aois.write_status(f"{aoi}{AOI_SUFFIX}", "removed", message="the file was removed: no longer "
                                  "synced; its statistics tables are kept")
        for aoi in changed:
            aois.write_status(f"{aoi}{AOI_SUFFIX}", "pending", message="registered; statistics being computed")
        gone = [k for k in registered if k in stopped]
        order = [k for k in registered if k not in gone] + [a for a in changed if a not in registered]
        latest = {d.id: dict(instance.get_latest_storage_id_by_partition(statistics_key(d.id),
                  DagsterEventType.ASSET_MATERIALIZATION)) for d in datasets}
        for aoi in changed:
            cursor.aois[aoi].requested = {ds: per.get(aoi, 0) for ds, per in latest.items()}
        tokens = {d.id: cog_token(instance, d) for d in datasets}
        runs = plan_runs(order, changed, tokens, cursor)
        saved = update_statuses(aois, instance, cursor, latest)
        context.log.info(f"AOIs: {len(changed)} registered or edited, {len(stopped)} stopped, {len(saved)} "
                         f"statuses written, runs for {sorted(runs) or 'no dataset'}")
        requests = []
        if new := [a for a in changed if a not in registered]:
            requests.append(AOIS.build_add_request(new))
        if gone:
            requests.append(AOIS.build_delete_request(gone))
        return SensorResult(
            run_requests=[run_request(ds, order, target, tokens[ds]) for ds, target in runs.items()],
            dynamic_partitions_requests=requests,
            cursor=cursor.to_json(),
        )

    return aoi_sensor
