"""The IO manager for granule files and COGs: real formats in a folder or on S3, never pickles.

It stores the original granule file and the GeoTIFF at deterministic keys (see
``artifacts``), records ``uri``, size and checksum on every materialization, and loads them
back for downstream assets (STAC JSON is written by ``catalog.StaticCatalog``). Locally produced files are handed over: once stored, the
scratch copy is removed.
"""


import atexit
import shutil
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext
from pydantic import Field

from .artifacts import (
    COG_MEDIA_TYPE,
    ConvertedCog,
    StagedGranule,
    cog_key,
    granule_key,
    record_key,
)
from .granules import GranuleRecord
from .storage import Storage, StorageError, StoredObject, open_storage

_SCRATCH: list[Path] = []


def scratch_dir() -> Path:
    """A per-process scratch folder, removed at exit, for downloads of stored inputs."""
    if not _SCRATCH:
        path = Path(tempfile.mkdtemp(prefix="cog_assets-"))
        _SCRATCH.append(path)
        atexit.register(shutil.rmtree, path, True)
    return _SCRATCH[0]


def object_metadata(stored: StoredObject) -> dict[str, Any]:
    return {
        "uri": MetadataValue.url(stored.uri) if stored.uri.startswith("http") else stored.uri,
        "size_bytes": stored.size,
        "sha256": stored.sha256,
    }


class StorageIOManager(ConfigurableIOManager):
    """Stores granule files and COGs under COG_ASSETS_STORAGE."""

    storage_url: str = Field(description="file:///abs/dir or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(default=None, description="AWS_ENDPOINT_URL")
    s3_region: str | None = Field(default=None, description="AWS_REGION")
    s3_max_attempts: int = Field(default=5, ge=1, description="boto3 attempts per S3 call")

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.storage_url, self.s3_endpoint_url, self.s3_region, self.s3_max_attempts)

    # -- writing ---------------------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        dataset_id = context.asset_key.path[0]
        if isinstance(obj, StagedGranule):
            self._store_granule(context, dataset_id, obj)
        elif isinstance(obj, ConvertedCog):
            key = cog_key(dataset_id, obj.record.item_id)
            stored = self.storage.put_file(obj.path, key, COG_MEDIA_TYPE)
            obj.path.unlink(missing_ok=True)
            context.add_output_metadata(object_metadata(stored))
        else:
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; the storage "
                "IO manager stores StagedGranule and ConvertedCog (STAC JSON is written by the StaticCatalog resource)"
            )

    def _store_granule(self, context: OutputContext, dataset_id: str, obj: StagedGranule) -> None:
        file_name = obj.record.require_file_name()
        stored = self.storage.put_file(obj.path, granule_key(dataset_id, file_name), "application/x-hdf5")
        obj.path.unlink(missing_ok=True)
        # The record is written last: its presence means the file it names is complete.
        self.storage.put_bytes(
            obj.record.model_dump_json(indent=1).encode(),
            record_key(dataset_id, obj.record.concept_id),
            "application/json",
        )
        context.add_output_metadata(
            {
                **object_metadata(stored),
                "file_name": file_name,
                "cmr_concept_id": obj.record.concept_id,
                "cmr_revision_id": obj.record.revision_id,
                "cmr_checksum": f"{obj.record.checksum_algorithm}:{obj.record.checksum}"
                if obj.record.checksum
                else "not provided by CMR",
            }
        )

    # -- reading ---------------------------------------------------------------------------
    def _record(self, dataset_id: str, concept_id: str) -> GranuleRecord:
        try:
            raw = self.storage.get_bytes(record_key(dataset_id, concept_id))
        except StorageError as exc:
            raise StorageError(
                f"granule {concept_id} of {dataset_id} has not been staged ({exc}); materialize "
                f"{dataset_id}/granule for this partition first"
            ) from None
        return GranuleRecord.model_validate_json(raw)

    def load_input(self, context: InputContext) -> Any:
        dataset_id, name = context.asset_key.path[0], context.asset_key.path[-1]
        if name == "granule":
            record = self._record(dataset_id, context.asset_partition_key)
            key = granule_key(dataset_id, record.require_file_name())
            return StagedGranule(record=record, path=self.storage.local_copy(key, scratch_dir()))
        if name == "cog":
            record = self._record(dataset_id, context.asset_partition_key)
            key = cog_key(dataset_id, record.item_id)
            path = self.storage.local_copy(key, scratch_dir())
            return ConvertedCog(record=record, path=path, uri=self.storage.uri(key))
        raise TypeError(f"no loader for {context.asset_key.to_user_string()}")
