"""How one run shares its machine between its granules: a download slot and the converters.

A run works on several granules at once (``defs.granule_runs``), each on its own thread, so one
granule's download and uploads overlap another's conversion. What those threads wait for is
here:

* ``download``: granule downloads, ``downloads`` at a time (default 1). The step holds one slot
  of the ``earthdata`` pool, so across runs at most (pool limit × ``downloads``) downloads run
  at once, whatever the number of converters.
* ``convert``: the CPU-heavy part (``processing.convert``) on ``workers`` converters. rasterio
  and rio-cogeo hold Python's GIL while GDAL writes a COG (measured: two threads convert no
  faster than one), so with more than one worker the conversions run in converter processes,
  started once per run, fed JSON lines on stdin (paths and settings, never pickles) and
  answering JSON lines. One worker converts in the run's own process.

A converter process that dies (a GDAL crash, the OOM killer) fails only the granule it was
converting; the next conversion starts a new one. Each thread and process keeps one
``rasterio.Env`` for the run: without one, every dataset open builds a boto3 session when AWS
variables are set (~120 ms per granule measured).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from cog_assets.processing.convert import ConversionJob, Converted, convert, error_to_json, raise_reported

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1: cpu.cfs_quota_us (-1: none), cpu.cfs_period_us
_GDAL_ENV = threading.local()


class ConversionCrashed(RuntimeError):
    """The converter process stopped while converting a granule."""


def available_cores(cpu_max: Path = CGROUP_CPU_MAX, v1: Path = CGROUP_V1_CPU) -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota (what a
    container's CPU limit, e.g. an ECS task's, looks like from inside)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota(cpu_max, v1)
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def _cgroup_quota(cpu_max: Path, v1: Path) -> float | None:
    """CPUs the cgroup quota allows (None: no quota, or no cgroup files)."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
        return None if quota_us <= 0 else quota_us / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def enter_gdal_env() -> None:
    """One rasterio/GDAL environment for this thread, kept for its lifetime (thread initializer)."""
    import rasterio

    if getattr(_GDAL_ENV, "env", None) is None:
        _GDAL_ENV.env = rasterio.Env()
        _GDAL_ENV.env.__enter__()


class _Converter(Protocol):
    def convert(self, job: ConversionJob) -> Converted: ...
    def close(self) -> None: ...


class _InProcess:
    def convert(self, job: ConversionJob) -> Converted:
        return convert(job)

    def close(self) -> None:
        pass


class _ConverterProcess:
    """One converter process (``python -m cog_assets.processing.lanes``), restarted after a crash."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cog_assets.processing.lanes"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, bufsize=1,
        )

    def convert(self, job: ConversionJob) -> Converted:
        if self.process is not None and self.process.poll() is not None:  # died while idle
            _discard(self.process)
            self.process = None
        if self.process is None:
            self.start()
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(job.to_json() + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except OSError:  # its end of the pipe is gone
            line = ""
        if not line:
            self.process = None
            code = _discard(process)
            raise ConversionCrashed(
                f"the converter process (pid {process.pid}) stopped with exit code {code} while converting "
                f"{job.granule.name}; a new one converts the next granule. Re-run this partition"
            )
        reply = json.loads(line)
        if "error" in reply:
            raise_reported(reply["error"])
        return Converted.from_dict(reply)

    def close(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            _discard(process)


def _discard(process: subprocess.Popen[str]) -> int:
    """End a converter process (closing its input ends it; killed if it does not) and its pipes;
    its exit code."""
    for pipe in (process.stdin, process.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:  # a broken pipe to a dead process
            pass
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class Lanes(AbstractContextManager["Lanes"]):
    """The download slots and converters of one run (or, by default, none: one granule at a
    time, converted in this process, as ``chain.process`` alone runs)."""

    def __init__(self, workers: int = 1, downloads: int = 0, threads: int = 1) -> None:
        self.workers = max(1, workers)
        self.threads = max(1, threads)  # GDAL threads per conversion
        self.download: AbstractContextManager[object] = (
            threading.BoundedSemaphore(downloads) if downloads else nullcontext()
        )
        converters: list[_Converter] = [_InProcess()] if self.workers == 1 else [_ConverterProcess() for _ in range(self.workers)]
        for converter in converters:
            if isinstance(converter, _ConverterProcess):
                converter.start()  # imports overlap the run's first downloads
        self._idle = converters
        self._all = list(converters)
        self._ready = threading.Condition()

    def convert(self, job: ConversionJob) -> Converted:
        """Convert on the next free converter (waits for one)."""
        with self._ready:
            self._ready.wait_for(lambda: bool(self._idle))
            converter = self._idle.pop()  # the one used last: its process's caches are warm
        try:
            return converter.convert(replace(job, threads=self.threads))
        finally:
            with self._ready:
                self._idle.append(converter)
                self._ready.notify()

    def close(self) -> None:
        for converter in self._all:
            converter.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


INLINE = Lanes()


def serve() -> None:
    """A converter process: one job per line on stdin, one result per line on stdout, until stdin
    closes. Anything else printed goes to stderr, so the protocol stays clean."""
    protocol = sys.stdout
    sys.stdout = sys.stderr
    enter_gdal_env()
    for line in sys.stdin:
        try:
            reply = convert(ConversionJob.from_json(line)).to_json()
        except Exception as exc:  # noqa: BLE001 (reported to the run, which fails the granule)
            reply = error_to_json(exc)
        protocol.write(reply + "\n")
        protocol.flush()


if __name__ == "__main__":
    serve()
