from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from cog_assets.dataset import DatasetConfig, load_datasets

from .cmr_server import FakeCmr
from .services import (
    PgBouncer,
    Postgres,
    S3Server,
    StacApiServer,
    start_pgbouncer,
    start_postgres,
    start_seaweedfs,
    start_stac_api,
)


@pytest.fixture(scope="session")
def datasets() -> dict[str, DatasetConfig]:
    return {d.id: d for d in load_datasets()}


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """An ephemeral (in-memory) Dagster instance."""
    with DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def fake_cmr() -> Iterator[FakeCmr]:
    with FakeCmr() as server:
        yield server


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    import os

    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({k: v for k, v in server.env().items() if k in saved})
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture
def s3_prefix_url(seaweedfs: S3Server) -> str:
    """A fresh prefix in the test bucket, as a COG_ASSETS_STORAGE URL."""
    return f"s3://{seaweedfs.bucket}/run-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def local_storage_url(tmp_path: Path) -> str:
    return (tmp_path / "storage").as_uri()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pgbouncer(postgres: Postgres) -> Iterator[PgBouncer]:
    """PgBouncer in front of the session's PostgreSQL, configured as deploy/pgbouncer.ini."""
    server = start_pgbouncer(postgres, Path(__file__).resolve().parents[1] / "deploy" / "pgbouncer.ini")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stac_api_server(postgres: Postgres) -> Iterator[StacApiServer]:
    server = start_stac_api(postgres)
    yield server
    server.stop()


@pytest.fixture
def stac_api_url(stac_api_server: StacApiServer, datasets: dict[str, DatasetConfig]) -> str:
    """The session's STAC API, emptied of the datasets' collections (and their items)."""
    import httpx

    for dataset_id in datasets:
        response = httpx.delete(f"{stac_api_server.url}/collections/{dataset_id}", timeout=30)
        assert response.status_code in (200, 204, 404), response.text
    return stac_api_server.url
