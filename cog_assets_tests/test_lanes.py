"""What a run's granules share (processing.lanes): converters in processes give the COG the run's
own process gives, in parallel, with the same errors; a dead converter fails one granule only;
the cores a run has follow its CPU quota."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cog_assets.formats.errors import GranuleReadError
from cog_assets.processing.convert import ConversionJob, convert
from cog_assets.processing.lanes import ConversionCrashed, Lanes, available_cores

from .granule_files import imerg_values, make_imerg_granule, make_omi_granule


def _job(tmp_path: Path, datasets, name: str = "omi", content: bytes | None = None, dataset: str = "omdoao3e") -> ConversionJob:
    granule = tmp_path / f"{name}.h5"
    granule.write_bytes(content if content is not None else make_omi_granule().content)
    render = datasets[dataset].stac.render
    return ConversionJob(granule, datasets[dataset].reader, tmp_path / f"{name}.tif", render.colormap, render.rescale)


def test_available_cores_follow_the_cgroup_quota(tmp_path):
    affinity, absent = len(os.sched_getaffinity(0)), tmp_path / "absent"
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    assert available_cores(quota, absent) == affinity
    quota.write_text("50000 100000\n")  # half a CPU: still one converter
    assert available_cores(quota, absent) == 1
    quota.write_text(f"{100000 * (affinity + 3)} 100000\n")  # a quota above the cores it may use
    assert available_cores(quota, absent) == affinity
    assert available_cores(absent, absent) == affinity
    v1 = tmp_path / "cpu"  # cgroup v1, as some container hosts still mount it
    v1.mkdir()
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert available_cores(absent, v1) == affinity
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    assert available_cores(absent, v1) == 1


def test_a_converter_process_writes_the_same_cog_as_the_run_itself(tmp_path, datasets):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    here = convert(_job(tmp_path / "a", datasets))
    with Lanes(workers=2) as lanes:
        there = lanes.convert(_job(tmp_path / "b", datasets))
    assert here.converter == os.getpid() and there.converter != os.getpid()
    assert here.info == there.info and here.info is not None  # same statistics, size and sha256
    assert there.cog.read_bytes() == here.cog.read_bytes()
    assert there.thumbnail and there.thumbnail.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert there.preview and there.preview.read_bytes()[8:12] == b"WEBP"


@pytest.mark.parametrize("workers, parallel", [(2, True), (1, False)])
def test_conversions_run_in_parallel_up_to_the_workers(tmp_path, datasets, workers, parallel):
    content = make_imerg_granule(imerg_values()).content  # 3600 x 1800: long enough to overlap
    jobs = [_job(tmp_path, datasets, f"g{n}", content, "gpm_3imerghh") for n in range(2)]
    with Lanes(workers=workers) as lanes, ThreadPoolExecutor(2) as threads:
        first, second = threads.map(lanes.convert, jobs)
    overlap = min(first.finished, second.finished) > max(first.started, second.started)
    assert overlap is parallel
    assert (first.converter != second.converter) is parallel


def test_a_converter_process_reports_errors_as_the_run_itself_would(tmp_path, datasets):
    job = _job(tmp_path, datasets, content=b"not an HDF5 file at all")
    with pytest.raises(GranuleReadError) as here:
        convert(job)
    with Lanes(workers=2) as lanes, pytest.raises(GranuleReadError) as there:
        lanes.convert(job)
    assert str(there.value) == str(here.value) and "not a readable HDF5 file" in str(here.value)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_converter_dying_mid_conversion_fails_that_granule_only(tmp_path, datasets):
    big = make_imerg_granule(imerg_values()).content  # about a second of work
    with Lanes(workers=2) as lanes, ThreadPoolExecutor(1) as thread:
        first = lanes.convert(_job(tmp_path, datasets, "first"))
        idle = _cpu_seconds(first.converter)
        # the converter used last is used next (its caches are warm): the one killed below
        doomed = thread.submit(lanes.convert, _job(tmp_path, datasets, "doomed", big, "gpm_3imerghh"))
        deadline = time.monotonic() + 60
        while _cpu_seconds(first.converter) < idle + 0.05:  # busy converting
            assert time.monotonic() < deadline and not doomed.done()
            time.sleep(0.01)
        os.kill(first.converter, signal.SIGKILL)
        with pytest.raises(ConversionCrashed, match=r"converter process .* stopped .* -9 while converting doomed\.h5"):
            doomed.result(timeout=60)
        again = lanes.convert(_job(tmp_path, datasets, "again"))
    assert again.info is not None and again.converter != first.converter
