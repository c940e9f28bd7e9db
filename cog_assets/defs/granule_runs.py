"""Inside one run of a dataset's chain: its granules worked on concurrently, each partition
materialized (or failed) as soon as its granules are done.

Each granule is ``chain.process`` on a thread of the run, so one granule's download and
uploads overlap another's conversion; conversions run on ``workers`` converters (processes
when more than one, ``processing.lanes``), downloads through the run's download slots. A
granule's work is isolated as before: its own scratch folder, its own revision keys, its own
commit (``processing.revisions``), caught failures. Only the run's main thread talks to
Dagster: it yields each partition's materializations the moment the partition completes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    Config,
    MetadataValue,
)
from pydantic import Field

from cog_assets.defs.partitions import PartitionStrategy, PartitionWork
from cog_assets.processing import chain
from cog_assets.processing.lanes import Lanes, available_cores, enter_gdal_env

SHOWN_FAILURES = 20
REPROCESS_TAG = "cog_assets/reprocess"


class ChainRunConfig(Config):
    """Per-run settings of the chain step (Launchpad, or a backfill's run config)."""

    workers: int = Field(
        default=0, ge=0, description="granules converted at once in this run; 0: one per core the run has"
    )
    downloads: int = Field(
        default=1, ge=1, description="granule downloads at once in this run. The step holds one slot of "
        "the 'earthdata' pool, so across runs at most (pool limit × downloads) downloads run at once",
    )


class Tally(Protocol):
    """What the chain asset keeps of its run's outcomes (``assets._Tally``)."""

    failed_partitions: list[str]

    def add(self, outcome: chain.GranuleOutcome) -> None: ...
    def fail_partition(self, key: str, cause: str | None = None) -> None: ...


@dataclass
class EventClock:
    """Time the run's main thread spent handing events to Dagster (storing them included): wall
    time, and the thread's CPU time (the wall time grows while granule threads hold the GIL)."""

    events: int = 0
    seconds: float = 0.0
    cpu: float = 0.0

    def emit(self, events: Iterable[Any]) -> Iterator[Any]:
        for event in events:
            started, cpu = time.perf_counter(), time.thread_time()
            yield event
            self.seconds += time.perf_counter() - started
            self.cpu += time.thread_time() - cpu
            self.events += 1

    def summary(self) -> str:
        each = 1000 / max(1, self.events)
        return (f"Dagster took {self.seconds:.2f} s ({self.cpu:.2f} s of CPU) to record {self.events} events "
                f"({self.seconds * each:.1f} ms, {self.cpu * each:.1f} ms of CPU each)")


@dataclass
class _Partition:
    work: PartitionWork
    results: list[tuple[str, chain.GranuleOutcome] | None] = field(default_factory=list)
    left: int = 0


_LINKS = {"uri", "thumbnail", "cmr_record", "stac_api_item"}


def object_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Dagster metadata from a step's plain dict: links where a browser can follow them (http;
    ``file://`` and ``s3://`` URIs stay text to copy), the preview as an inline image, JSON for
    lists."""
    shown: dict[str, Any] = {}
    for key, value in metadata.items():
        text = str(value)
        if key == "preview":
            shown[key] = MetadataValue.md(f"![preview of the COG]({text})")
        elif key in _LINKS and text.startswith(("http://", "https://")):
            shown[key] = MetadataValue.url(text)
        elif isinstance(value, (list, dict)):
            shown[key] = MetadataValue.json(value)
        elif value is not None:
            shown[key] = value
    return shown


def _observations(keys: dict[str, AssetKey], steps: set[str], partition: str, results: list, run_id: str) -> Iterator[AssetObservation]:
    """The cause on the failed partition's own page (its events), not only in the run's log."""
    causes = [outcome.error for _, outcome in results if outcome.error]
    for step in sorted(steps):
        yield AssetObservation(
            asset_key=keys[step],
            partition=partition,
            description="failed: " + "; ".join(causes)[:2000],
            metadata={"status": "failed", "cause": MetadataValue.md("\n\n".join(f"- {c}" for c in causes[:SHOWN_FAILURES])),
                      "run": MetadataValue.text(run_id)},
        )


def _finish(context: AssetExecutionContext, svc: chain.Services, strategy: PartitionStrategy, keys: dict[str, AssetKey],
            steps: set[str], partition: _Partition, tally: Tally) -> Iterator[Any]:
    """A partition whose granules are all done: its materializations, or its failure."""
    results = [r for r in partition.results if r is not None]
    done = strategy.materialize(svc, partition.work.key, results, steps, context.log.info)
    if done is None:
        tally.fail_partition(partition.work.key)
        yield from _observations(keys, steps, partition.work.key, results, context.run.run_id)
        return
    for step, metadata in done.items():
        yield AssetMaterialization(asset_key=keys[step], partition=partition.work.key, metadata=object_metadata(metadata))


def _sizes(config: ChainRunConfig, granules: int) -> tuple[int, int, int]:
    """(converters, granule threads, GDAL threads per conversion) for a run of ``granules``."""
    cores = available_cores()
    workers = max(1, min(config.workers or cores, granules))
    threads = max(1, min(granules, 2 * workers + config.downloads))  # converters never wait for I/O
    return workers, threads, max(1, cores // workers)


def run_partitions(context: AssetExecutionContext, svc: chain.Services, strategy: PartitionStrategy,
                   keys: dict[str, AssetKey], scratch: Path, tally: Tally, config: ChainRunConfig, clock: EventClock) -> Iterator[Any]:
    """Work through the run's partitions, granules concurrently; yield each partition's events
    as it completes (a day: when its last granule is done)."""
    steps = {key.path[-1] for key in context.selected_asset_keys}
    skip_current = strategy.skips_current(steps, context.run.tags.get(REPROCESS_TAG) == "true")
    works = strategy.work(svc, list(context.partition_keys), "granule" in steps, context.log.warning)
    partitions = [_Partition(w, [None] * len(w.granules), len(w.granules)) for w in works]
    for partition in partitions:
        if not partition.work.granules:  # a day CMR lists nothing for
            tally.fail_partition(partition.work.key, _nothing_listed(svc, partition.work.key))
    jobs = [(p, n, concept, found) for p in partitions for n, (concept, found) in enumerate(p.work.granules)]
    workers, threads, gdal_threads = _sizes(config, len(jobs))
    context.log.info(f"{len(jobs)} granules in {len(works)} partitions: {workers} converters, {threads} granules at "
                     f"once, {config.downloads} download(s) at once")
    finished = 0
    with Lanes(workers, config.downloads, gdal_threads) as lanes, \
            ThreadPoolExecutor(threads, thread_name_prefix="granule", initializer=enter_gdal_env) as pool:
        svc = replace(svc, lanes=lanes)
        todo = iter(jobs)
        pending: dict[Future[chain.GranuleOutcome], tuple[_Partition, int, str]] = {}
        try:
            while True:
                while len(pending) < threads and (job := next(todo, None)) is not None:
                    partition, n, concept, found = job
                    pending[pool.submit(chain.process, svc, concept, found, steps, scratch, skip_current)] = (partition, n, concept)
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    partition, n, concept = pending.pop(future)
                    outcome = future.result()
                    tally.add(outcome)
                    partition.results[n] = (concept, outcome)
                    partition.left -= 1
                    if partition.left == 0:
                        yield from clock.emit(_finish(context, svc, strategy, keys, steps, partition, tally))
                        finished += 1
                        if finished % 10 == 0:
                            context.log.info(f"{finished}/{len(works)} partitions done, {len(tally.failed_partitions)} failed")
        finally:
            for future in pending:
                future.cancel()
    context.log.info(f"{len(works)}/{len(works)} partitions done, {len(tally.failed_partitions)} failed; {clock.summary()}")


def _nothing_listed(svc: chain.Services, day: str) -> str:
    cmr = svc.dataset.query
    return (
        f"day {day}: CMR lists no {cmr.short_name} v{cmr.version} ({cmr.provider}) granule beginning that day; "
        "nothing was written. If the day is not published yet, re-run it later"
    )


def report_failed_partitions(context: AssetExecutionContext, keys: list[AssetKey], partitions: list[str]) -> None:
    """A "materialization planned" event per failed partition and asset, before the run fails.

    With DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS (deploy/: one planned event per asset
    for a whole ranged run, instead of one per partition written before the run may start),
    Dagster no longer knows which partitions a failed run was meant to materialize, and would
    show the failed ones as missing. These events restore exactly that, for the failed ones only;
    without the setting they repeat what Dagster already wrote, which changes nothing.
    """
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent

    for partition in partitions:
        for key in keys:
            event = DagsterEvent.build_asset_materialization_planned_event(
                context.job_name, str(context.op_execution_context.op_handle), AssetMaterializationPlannedData(key, partition=partition)
            )
            context.instance.report_dagster_event(event, run_id=context.run.run_id)
