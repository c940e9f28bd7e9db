"""Download granule files from Earthdata hosts with a bearer token, verified before use.

Redirects are followed by hand so the token goes only to Earthdata hosts, and only over https
(data hosts redirect through urs.earthdata.nasa.gov and then on to signed cloud URLs that must
not see it); a test server on plain http gets it only when listed in
``insecure_testing_origins`` (see ``cog_assets.tokens``). The
body streams to a temporary file; reading stops as soon as it exceeds the size CMR declared,
and the size and checksum are checked before the file is handed on.
"""


import hashlib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import httpx
from dagster import ConfigurableResource
from pydantic import Field, field_validator

from cog_assets import tokens
from cog_assets.http import tls_context
from cog_assets.retry import backoff, wait
from cog_assets.sources.cmr.records import GranuleRecord

EARTHDATA_HOST_SUFFIXES = ("earthdata.nasa.gov", "eosdis.nasa.gov", "earthdatacloud.nasa.gov")
MAX_REDIRECTS = 10
_CHUNK = 1 << 20
# CMR's Size in MB is rounded; allow this much slack when only it is known.
_APPROX_SLACK = 0.05


class DownloadError(RuntimeError):
    """A granule could not be downloaded, or what arrived is not what CMR described."""



class EarthdataDownloader(ConfigurableResource):
    """Stages granule files from Earthdata download hosts (EARTHDATA_TOKEN)."""

    token: str | None = Field(default=None, description="Earthdata bearer token (EnvVar)")
    token_hosts: list[str] = Field(
        default=list(EARTHDATA_HOST_SUFFIXES),
        description="host names (or suffixes) that may receive the token over https "
        "(COG_ASSETS_EARTHDATA_HOSTS adds to the Earthdata hosts)",
    )
    insecure_testing_origins: list[str] = Field(
        default_factory=list,
        description="TESTING ONLY: http://<loopback address> origins that may receive the "
        "token over plain http (COG_ASSETS_INSECURE_TESTING_ORIGINS)",
    )
    timeout_seconds: float = 120.0
    max_attempts: int = Field(default=4, ge=1)
    backoff_seconds: float = 1.0

    @field_validator("insecure_testing_origins")
    @classmethod
    def _loopback_only(cls, value: list[str]) -> list[str]:
        return [tokens.check_insecure_origin(entry) for entry in value]

    def _withheld_because(self, url: str) -> str | None:
        """Why the token may not go to ``url`` (None: it may)."""
        if tokens.is_insecure_testing(url, self.insecure_testing_origins):
            return None
        host = urlparse(url).hostname
        if not tokens.host_allowed(url, self.token_hosts):
            return (
                f"{host} is not an Earthdata host; if it is a data host that needs the token, "
                "add it to COG_ASSETS_EARTHDATA_HOSTS"
            )
        return tokens.tls_problem(url, self.insecure_testing_origins, "the granule's CMR 'GET DATA' URL")

    def download(self, record: GranuleRecord, directory: Path) -> Path:
        """The verified file at ``directory/<file name>``; raises DownloadError otherwise."""
        file_name = record.require_file_name()
        assert record.data_url is not None
        directory.mkdir(parents=True, exist_ok=True)
        problem = ""
        for attempt in range(self.max_attempts):
            try:
                return self._attempt(record, directory / file_name)
            except _Transient as exc:
                problem = str(exc)
                if attempt + 1 < self.max_attempts:
                    wait(backoff(attempt, self.backoff_seconds, 60.0))
        raise DownloadError(
            f"granule {record.concept_id} ({file_name}): download failed {self.max_attempts} "
            f"times; last error: {problem}. The data host may be down; retry the partition later"
        )

    def _attempt(self, record: GranuleRecord, target: Path) -> Path:
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        try:
            with httpx.Client(timeout=self.timeout_seconds, follow_redirects=False, verify=tls_context()) as client:
                digest = self._fetch(client, record, temp)
            self._verify(record, temp, digest)
            temp.replace(target)
            return target
        finally:
            temp.unlink(missing_ok=True)

    def _fetch(self, client: httpx.Client, record: GranuleRecord, temp: Path) -> Any:
        url = record.data_url
        assert url is not None
        limit = self._size_limit(record)
        for _hop in range(MAX_REDIRECTS + 1):
            headers = {"User-Agent": "cog_assets/0.1"}
            withheld = self._withheld_because(url) if self.token else None
            if self.token and withheld is None:
                headers["Authorization"] = f"Bearer {self.token}"
            try:
                with client.stream("GET", url, headers=headers) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    self._check_status(record, response, withheld)
                    digest = hashlib.new(record.checksum_algorithm) if record.checksum_algorithm else None
                    received = 0
                    with temp.open("wb") as handle:
                        for chunk in response.iter_bytes(_CHUNK):
                            received += len(chunk)
                            if limit is not None and received > limit:
                                raise DownloadError(
                                    f"granule {record.concept_id} ({record.file_name}): the "
                                    f"server sent more than the {limit} bytes CMR declared; "
                                    "stopped reading. The file or its CMR record is wrong; "
                                    "report it to the data provider"
                                )
                            handle.write(chunk)
                            if digest is not None:
                                digest.update(chunk)
                    return digest
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                raise _Transient(f"{type(exc).__name__} from {urlparse(url).hostname}: {exc}") from exc
        raise DownloadError(
            f"granule {record.concept_id}: more than {MAX_REDIRECTS} redirects from {record.data_url}"
        )

    @staticmethod
    def _size_limit(record: GranuleRecord) -> int | None:
        if record.size_bytes is not None:
            return record.size_bytes
        if record.approx_size_bytes is not None:
            return int(record.approx_size_bytes * (1 + _APPROX_SLACK)) + (1 << 20)
        return None

    def _check_status(self, record: GranuleRecord, response: httpx.Response, withheld: str | None) -> None:
        status = response.status_code
        if status == 200:
            return
        where = f"{urlparse(str(response.url)).hostname}"
        name = f"granule {record.concept_id} ({record.file_name})"
        if status in (401, 403) and withheld is not None:
            raise DownloadError(
                f"{name}: {where} answered HTTP {status}: EARTHDATA_TOKEN was not sent to {where} "
                f"because {withheld}. Nothing is wrong with the token itself"
            )
        if status in (401, 403):
            has_token = "no EARTHDATA_TOKEN is set" if not self.token else "EARTHDATA_TOKEN was sent"
            raise DownloadError(
                f"{name}: {where} answered HTTP {status} "
                f"({has_token}). The token is missing, expired or invalid, or the Earthdata "
                "application for this archive is not approved / its EULA not accepted: generate "
                "a new token at urs.earthdata.nasa.gov, authorize the application and accept the "
                "EULA, then set EARTHDATA_TOKEN"
            )
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status} from {where}")
        raise DownloadError(
            f"granule {record.concept_id} ({record.file_name}): {where} answered HTTP {status} for "
            f"{record.data_url}"
        )

    @staticmethod
    def _verify(record: GranuleRecord, temp: Path, digest: Any) -> None:
        size = temp.stat().st_size
        name = f"granule {record.concept_id} ({record.file_name})"
        if record.size_bytes is not None and size != record.size_bytes:
            raise _Transient(
                f"{name}: received {size} bytes but CMR declares {record.size_bytes} (truncated "
                "download?)"
            )
        if digest is not None and digest.hexdigest().lower() != (record.checksum or "").lower():
            raise DownloadError(
                f"{name}: {record.checksum_algorithm} checksum mismatch: expected "
                f"{record.checksum} (from CMR), got {digest.hexdigest()}. The file is corrupt or "
                "CMR's record is stale; nothing was stored"
            )


class _Transient(DownloadError):
    """Worth another attempt."""
