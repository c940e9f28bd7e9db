"""The platform's IO manager (bound as ``io_manager``): its data boundary with users' assets.

Outputs go to the same local folder or S3 prefix as everything else (S3 through dagster-aws's
``S3Resource``, endpoint from ``AWS_ENDPOINT_URL``), under ``<asset key path>/<partition>``:
Arrow or pandas tables as Parquet, pystac objects, dicts and lists as JSON. Nothing is ever
pickled: any other value is refused with what to return instead. Each object is written
atomically (a rename, or one S3 PUT) and reported with ``uri``, ``size_bytes``, ``sha256``.

Inputs: ``<dataset>/cog`` gives ``CogRef`` objects and ``<dataset>/stac_item`` gives
``pystac.Item`` objects (see ``references``), for one partition, or a mapping partition → value
for several (a day of a by-day dataset gives a list: its granules). Anything this IO manager
wrote loads back as stored (a ``pyarrow.Table``, pandas when the input is annotated so, an
item, a collection, a dict).
"""

from __future__ import annotations

import collections.abc
import io
import json
import os
import typing
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pystac
from dagster import (
    ConfigurableIOManager,
    InputContext,
    OutputContext,
    TimeWindowPartitionsDefinition,
)
from pydantic import Field

from cog_assets.analysis.zonal import gdal_options
from cog_assets.defs.references import load_cogs, load_items
from cog_assets.store.objects import Storage, StorageError, open_storage, storage_key

CHAIN_INPUTS = {"cog": load_cogs, "stac_item": load_items}
PARQUET, JSON = ".parquet", ".json"
WRITE_THREADS = 8


def _is_pandas(value: Any) -> bool:
    return type(value).__module__.startswith("pandas") and hasattr(value, "to_parquet")


def encode(value: Any, where: str) -> tuple[bytes, str, str]:
    """(bytes, suffix, content type) of a value; refuses what it cannot store without pickle."""
    if isinstance(value, pa.Table) or _is_pandas(value):
        table = value if isinstance(value, pa.Table) else pa.Table.from_pandas(value, preserve_index=False)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue(), PARQUET, "application/vnd.apache.parquet"
    if isinstance(value, pystac.STACObject):
        value = value.to_dict(include_self_link=False, transform_hrefs=False)
    if isinstance(value, (dict, list)):
        try:
            data = json.dumps(value, indent=1, sort_keys=True).encode()
        except TypeError as exc:
            raise TypeError(f"{where}: the output is not JSON-serialisable ({exc}); convert the values to str/number") from None
        return data, JSON, "application/json"
    raise TypeError(
        f"{where}: the output is a {type(value).__module__}.{type(value).__qualname__}. The cog_assets "
        "IO manager stores pyarrow or pandas tables (Parquet), pystac objects, dicts and lists (JSON), "
        "and never pickles: return one of those, or return None / MaterializeResult from an asset that "
        "writes its own objects"
    )


def decode(data: bytes, suffix: str, wants_pandas: bool) -> Any:
    if suffix == PARQUET:
        table = pq.read_table(io.BytesIO(data))
        return table.to_pandas() if wants_pandas else table
    value = json.loads(data)
    if isinstance(value, dict) and "stac_version" in value:
        kind = value.get("type")
        if kind == "Feature":
            return pystac.Item.from_dict(value)
        if kind in ("Collection", "Catalog"):
            return (pystac.Collection if kind == "Collection" else pystac.Catalog).from_dict(value)
    return value


def _typing_type(context: InputContext) -> Any:
    try:
        return context.dagster_type.typing_type
    except Exception:  # noqa: BLE001 (no declared type: nothing to learn from it)
        return Any


def _wants_mapping(context: InputContext, keys: list[str]) -> bool:
    """A mapping for several partitions, or when the input is annotated as a dict/Mapping."""
    hint = _typing_type(context)
    origin = typing.get_origin(hint) or hint
    return len(keys) != 1 or (isinstance(origin, type) and issubclass(origin, collections.abc.Mapping))


class CogAssetsIOManager(ConfigurableIOManager):
    """Stores asset outputs as Parquet or JSON; loads COG references and STAC items."""

    storage_url: str = Field(description="file:///abs/dir or s3://bucket/prefix (COG_ASSETS_STORAGE)")
    s3_endpoint_url: str | None = Field(default=None, description="AWS_ENDPOINT_URL")
    s3_region: str | None = Field(default=None, description="AWS_REGION")

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.storage_url, self.s3_endpoint_url, self.s3_region)

    # -- outputs ----------------------------------------------------------------------------
    def _key(self, asset_key_path: list[str], partition: str | None, suffix: str) -> str:
        base = storage_key(*asset_key_path)
        return f"{base}/{storage_key(partition)}{suffix}" if partition else f"{base}{suffix}"

    def write(self, asset_key_path: list[str], partition: str | None, value: Any) -> dict[str, Any]:
        """Store one value (one partition's); returns the metadata to report."""
        where = "/".join(asset_key_path) + (f" partition {partition}" if partition else "")
        return self._put(asset_key_path, partition, encode(value, where))

    def _put(self, path: list[str], partition: str | None, encoded: tuple[bytes, str, str]) -> dict[str, Any]:
        data, suffix, content_type = encoded
        stored = self.storage.put_bytes(data, self._key(path, partition, suffix), content_type)
        return {"uri": stored.uri, "size_bytes": stored.size, "sha256": stored.sha256}

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        path = list(context.asset_key.path)
        if not context.has_asset_partitions:
            context.add_output_metadata(self.write(path, None, obj))
            return
        keys = list(context.asset_partition_keys)
        if len(keys) == 1:
            context.add_output_metadata(self.write(path, keys[0], obj))
            return
        if not isinstance(obj, collections.abc.Mapping) or set(obj) != set(keys):
            raise TypeError(
                f"{'/'.join(path)}: a run over {len(keys)} partitions must return a mapping with one "
                f"value per partition key ({keys[0]} … {keys[-1]}); got "
                + (f"keys {sorted(obj)[:5]}" if isinstance(obj, collections.abc.Mapping) else type(obj).__name__)
            )
        # every value encoded before any is written: a bad value leaves storage untouched
        encoded = {k: encode(obj[k], f"{'/'.join(path)} partition {k}") for k in keys}
        with ThreadPoolExecutor(WRITE_THREADS) as pool:  # many small objects: overlap the PUTs
            written = dict(zip(keys, pool.map(lambda key: self._put(path, key, encoded[key]), keys)))
        for key in keys:
            context.step_context.add_asset_metadata(written[key], asset_key=context.asset_key, partition_key=key)

    # -- inputs -----------------------------------------------------------------------------
    def load_input(self, context: InputContext) -> Any:
        path = list(context.asset_key.path)
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        loader = CHAIN_INPUTS.get(path[-1]) if len(path) == 2 else None
        if loader is not None and keys:
            self._point_gdal_at_storage()
            by_day = isinstance(context.asset_partitions_def, TimeWindowPartitionsDefinition)
            found = loader(context.instance, self.storage, context.asset_key, keys, by_day)
        else:
            wants_pandas = getattr(_typing_type(context), "__name__", "") == "DataFrame"
            found = {k: v for k in keys or [None] if (v := self._read(path, k, wants_pandas)) is not None}
            if not keys:
                return self._single(context, path, None, found)
        if _wants_mapping(context, keys):
            return found
        return self._single(context, path, keys[0], found)

    def _single(self, context: InputContext, path: list[str], key: str | None, found: dict) -> Any:
        if key not in found:
            what = "/".join(path) + (f" partition {key}" if key else "")
            raise StorageError(f"{what} has not been materialized (nothing stored); materialize it first")
        return found[key]

    def _read(self, path: list[str], partition: str | None, wants_pandas: bool) -> Any | None:
        for suffix in (PARQUET, JSON):
            try:
                return decode(self.storage.get_bytes(self._key(path, partition, suffix)), suffix, wants_pandas)
            except StorageError:
                continue
        return None

    def _point_gdal_at_storage(self) -> None:
        """So ``rasterio.open(cog.uri)`` in a user's asset reads this S3-compatible server too
        (GDAL reads AWS_S3_ENDPOINT, not AWS_ENDPOINT_URL); settings already made are kept."""
        if self.storage_url.startswith("s3://"):
            for name, value in gdal_options(self.s3_endpoint_url).items():
                os.environ.setdefault(name, value)
