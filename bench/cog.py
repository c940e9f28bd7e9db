"""COG benchmark: the product's conversion against two baselines that share none of its code.

All three start from the same HDF5 granule file on disk and end with a north-up, deflate
(predictor 3), 512-pixel-block COG with averaged internal overviews and the fill as nodata:

* ``rio-cogeo``: h5py reads the variable, numpy flips it north-up (``bench/bare.py``), and
  rio-cogeo's ``cog_translate`` (what ``rio cogeo create`` runs; its CLI start-up is left out)
  writes it from an in-memory GeoTIFF;
* ``GDAL COG``: the same read, then GDAL's COG driver (through rasterio) writes the array
  (``bench/bare.py``, the backfill bench's baseline too);
* the product: ``processing.convert`` pieces, ``read_granule`` + ``write_cog`` (the COG step),
  and the whole conversion a granule gets (+ rio-cogeo validation, statistics, sha256, PNG
  thumbnail and WebP preview).

Each measurement runs in a fresh process (so its peak RSS is its own), GDAL single-threaded on
every side (one conversion per core is how runs use the machine). Prints a table; target: the
COG step <= 1.05x GDAL's COG driver.

    python bench/cog.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bare  # noqa: E402  (bench/bare.py: the baselines, no cog_assets code)

KINDS = ("rio-cogeo", "GDAL COG", "product COG step", "product conversion")
INPUTS = {"OMI 720x1440": "omdoao3e", "GPM 1800x3600": "gpm_3imerghh"}


def _baseline_write(kind: str, data, fill: float, transform, destination: Path) -> None:
    if kind == "GDAL COG":
        bare.write_cog(data, fill, transform, destination)
        return
    from rasterio.io import MemoryFile
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "height": data.shape[0], "width": data.shape[1],
               "crs": "EPSG:4326", "transform": transform, "nodata": fill}
    with MemoryFile() as memory:
        with memory.open(**profile) as source:
            source.write(data, 1)
        with memory.open() as source:
            cog_translate(source, str(destination), {**cog_profiles.get("deflate"), "predictor": 3},
                          in_memory=True, quiet=True, overview_resampling="average")


def _once(kind: str, label: str, granule: Path, destination: Path, dataset=None) -> None:
    if kind in ("rio-cogeo", "GDAL COG"):
        data, fill, transform = bare.read_north_up(granule, *bare.LAYOUTS[INPUTS[label]])
        _baseline_write(kind, data, fill, transform, destination)
        return
    from cog_assets.formats.cog import write_cog
    from cog_assets.formats.readers import read_granule
    from cog_assets.processing.convert import ConversionJob, convert

    if kind == "product COG step":
        write_cog(read_granule(granule, dataset.reader), destination)
    else:
        render = dataset.stac.render
        assert convert(ConversionJob(granule, dataset.reader, destination, render.colormap, render.rescale)).valid


def _measure(kind: str, label: str, granule: str, repeat: int, queue) -> None:
    import rasterio

    folder = Path(tempfile.mkdtemp())
    seconds = []
    dataset = None
    if kind.startswith("product"):  # the dataset file is read once per run, not per granule
        from cog_assets.dataset import load_datasets

        dataset = {d.id: d for d in load_datasets()}[INPUTS[label]]
    with rasterio.Env():  # one environment for the whole loop, on every side
        _once(kind, label, Path(granule), folder / "warm.tif", dataset)  # imports and caches
        for n in range(repeat):
            started = time.perf_counter()
            _once(kind, label, Path(granule), folder / f"out{n}.tif", dataset)
            seconds.append(time.perf_counter() - started)
    from rio_cogeo.cogeo import cog_validate

    assert cog_validate(str(folder / "out0.tif"), quiet=True)[0], f"{kind} wrote an invalid COG"
    queue.put((statistics.median(seconds), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               (folder / "out0.tif").stat().st_size))


def run(kind: str, label: str, granule: Path, repeat: int) -> tuple[float, float, int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(kind, label, str(granule), repeat, queue))
    process.start()
    result = queue.get(timeout=1800)
    process.join()
    return result


def _granules(folder: Path) -> dict[str, Path]:
    from cog_assets_tests.granule_files import imerg_values, make_imerg_granule, make_omi_granule

    files = {"OMI 720x1440": make_omi_granule().content, "GPM 1800x3600": make_imerg_granule(imerg_values()).content}
    paths = {}
    for label, content in files.items():
        paths[label] = folder / f"{label.split()[0]}.h5"
        paths[label].write_bytes(content)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    granules = _granules(Path(tempfile.mkdtemp(prefix="bench-cog-")))
    print(f"\nHDF5 granule → COG, median of {args.repeat}, each kind in a fresh process, GDAL single-threaded")
    print(f"{'input':<15}{'kind':<20}{'seconds':>9}{'vs GDAL COG':>13}{'peak RSS MB':>13}{'COG MB':>8}")
    for label, granule in granules.items():
        measured = {kind: run(kind, label, granule, args.repeat) for kind in KINDS}
        gdal = measured["GDAL COG"][0]
        for kind, (seconds, peak, size) in measured.items():
            print(f"{label:<15}{kind:<20}{seconds:>9.3f}{seconds / gdal:>12.2f}x{peak:>13.0f}{size / 1e6:>8.2f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("target: product COG step <= 1.05x GDAL COG")


if __name__ == "__main__":
    main()
