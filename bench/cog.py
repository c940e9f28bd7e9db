"""COG conversion benchmark: the project's conversion against rio-cogeo's cog_translate alone.

Both write the same float32 array (with nodata) with the same profile; each measurement runs
in a fresh process so its peak RSS is its own. Prints median time, ratio and peak memory.
Target: ratio <= 1.1.

    python bench/cog.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from affine import Affine

SIZES = [(720, 1440), (4096, 4096)]


def _array(shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols]
    data = (300 + 40 * np.sin(y / rows * 6) + 15 * np.cos(x / cols * 4) + rng.normal(0, 3, shape)).astype(np.float32)
    data[rng.random(shape) < 0.05] = np.float32(-9999.0)
    return data


def _measure(kind: str, shape: tuple[int, int], queue) -> None:
    from rasterio.io import MemoryFile
    from rio_cogeo.cogeo import cog_translate

    from cog_assets.formats import cog as cogs
    from cog_assets.formats.readers import Raster

    data = _array(shape)
    raster = Raster(data, Affine(360 / shape[1], 0, -180, 0, -180 / shape[0], 90), -9999.0, "DU", data != -9999.0)
    destination = Path(tempfile.mkdtemp()) / "out.tif"
    started = time.perf_counter()
    if kind == "project":
        cogs.write_cog(raster, destination)
        cogs.statistics(raster)
    elif kind == "project+validate":
        cogs.write_cog(raster, destination)
        cogs.statistics(raster)
        assert cogs.validate(destination)[0]
    else:
        with MemoryFile() as memory:
            with memory.open(**cogs.source_profile(raster)) as source:
                source.write(raster.data, 1)
            with memory.open() as source:
                cog_translate(source, str(destination), cogs.cog_profile(), in_memory=True, quiet=True,
                              overview_resampling=cogs.OVERVIEW_RESAMPLING)
    seconds = time.perf_counter() - started
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run(kind: str, shape: tuple[int, int]) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(kind, shape, queue))
    process.start()
    result = queue.get(timeout=300)
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'array':>11}  {'rio-cogeo (s)':>13}  {'project (s)':>11}  {'ratio':>6}  {'+validate (s)':>13}  {'peak RSS project / rio-cogeo (MB)':>34}")
    for shape in SIZES:
        results = {kind: [run(kind, shape) for _ in range(args.repeat)] for kind in ("rio-cogeo", "project", "project+validate")}
        median = {kind: statistics.median(t for t, _ in values) for kind, values in results.items()}
        peak = {kind: max(m for _, m in values) for kind, values in results.items()}
        print(
            f"{shape[0]:>5}x{shape[1]:<5}  {median['rio-cogeo']:>13.3f}  {median['project']:>11.3f}  "
            f"{median['project'] / median['rio-cogeo']:>5.2f}x  {median['project+validate']:>13.3f}  "
            f"{peak['project']:>16.0f} / {peak['rio-cogeo']:<16.0f}"
        )


if __name__ == "__main__":
    main()
