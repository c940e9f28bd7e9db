"""CMR granule search as a Dagster resource.

Paging uses only the ``CMR-Search-After`` header (``page_num`` and scrolling are deprecated).
Throttling (429 + Retry-After), 5xx answers and connection errors are retried with bounded,
jittered backoff; anything else surfaces CMR's own ``{"errors": [...]}`` text. A response
flagged ``CMR-Timed-Out`` holds partial results and is treated as an error, never as a short
page, so discovery never silently skips granules.
"""


from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from cog_assets.dataset import CmrQuery
from cog_assets.http import tls_context
from cog_assets.retry import RETRYABLE_STATUS, Retrying, send_with_retries, wait
from cog_assets.sources.cmr.records import (
    GranuleRecord,
    UmmParseError,
    cmr_time,
    parse_umm_item,
)

DEFAULT_CMR_URL = "https://cmr.earthdata.nasa.gov"
USER_AGENT = "cog_assets/0.1 (+Dagster)"


class CmrError(RuntimeError):
    """CMR answered with an error, partial results, or not at all."""


@dataclass
class CmrPage:
    records: list[GranuleRecord]
    hits: int | None
    search_after: str | None
    rejected: list[str] = field(default_factory=list)



def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cmr_errors(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)
    return response.text[:500] or response.reason_phrase


def query_params(
    query: CmrQuery,
    page_size: int,
    revision_since: datetime | None = None,
    concept_ids: list[str] | None = None,
    window: tuple[datetime, datetime | None] | None = None,
    sort_key: str = "revision_date",
) -> list[tuple[str, str]]:
    """CMR parameters for a dataset's granules, oldest first by ``sort_key`` (``revision_date``
    for incremental harvests, ``start_date`` to register a history in data-time order).

    ``window`` narrows the dataset's temporal range to granules overlapping [start, end].
    """
    params = [
        ("short_name", query.short_name),
        ("version", query.version),
        ("provider", query.provider),
        ("sort_key[]", sort_key),
        ("page_size", str(page_size)),
    ]
    first, last = query.temporal_start, query.temporal_end
    if window is not None:
        first = max(window[0], first) if first else window[0]
        if window[1] is not None:
            last = min(window[1], last) if last else window[1]
    if first or last:
        params.append(("temporal[]", f"{_iso(first) if first else ''},{_iso(last) if last else ''}"))
    if query.bounding_box:
        params.append(("bounding_box", ",".join(f"{v:g}" for v in query.bounding_box)))
    if revision_since:
        params.append(("revision_date[]", f"{cmr_time(revision_since)},"))
    for concept_id in concept_ids or []:
        params.append(("concept_id[]", concept_id))
    return params


class CmrClient(ConfigurableResource):
    """Search NASA's Common Metadata Repository for a dataset's granules."""

    base_url: str = Field(default=DEFAULT_CMR_URL, description="CMR root, COG_ASSETS_CMR_URL")
    page_size: int = Field(default=2000, ge=1, le=2000)
    timeout_seconds: float = 30.0
    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 30.0

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url.rstrip("/"),
            timeout=self.timeout_seconds,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            verify=tls_context(),
        )

    def _get(
        self, client: httpx.Client, path: str, params: list[tuple[str, str]], headers: dict[str, str]
    ) -> httpx.Response:
        def settled(response: httpx.Response) -> bool:
            if response.status_code == 200:
                if response.headers.get("CMR-Timed-Out", "").lower() == "true":
                    raise CmrError(
                        f"CMR timed out on {response.request.url} and returned partial "
                        "results; they were discarded so no granule is skipped. Narrow the "
                        "query (cmr.temporal_start) or retry later"
                    )
                return True
            if response.status_code not in RETRYABLE_STATUS:
                raise CmrError(f"CMR rejected {response.request.url} with HTTP {response.status_code}: {_cmr_errors(response)}")
            return False

        policy = Retrying(self.max_attempts, self.backoff_seconds, self.max_backoff_seconds, self.max_retry_after_seconds)
        response, problem = send_with_retries(
            lambda: client.get(path, params=params, headers=headers), settled, _cmr_errors, policy, wait
        )
        if response is not None:
            return response
        raise CmrError(
            f"CMR at {self.base_url} failed {self.max_attempts} times for {path}; last error: "
            f"{problem}. Check COG_ASSETS_CMR_URL and CMR's status, then retry"
        )

    def search_page(
        self,
        client: httpx.Client,
        params: list[tuple[str, str]],
        search_after: str | None = None,
        data_url_pattern: str | None = None,
    ) -> CmrPage:
        """One page of ``granules.umm_json``; ``search_after`` continues a previous page."""
        headers = {"CMR-Search-After": search_after} if search_after else {}
        response = self._get(client, "/search/granules.umm_json", params, headers)
        try:
            body: dict[str, Any] = response.json()
            items = body["items"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CmrError(
                f"CMR answered {response.request.url} with a body that is not a granules.umm_json "
                f"result ({type(exc).__name__}: {exc}); content-type "
                f"{response.headers.get('Content-Type')!r}"
            ) from None
        records: list[GranuleRecord] = []
        rejected: list[str] = []
        for item in items:
            try:
                records.append(parse_umm_item(item, data_url_pattern))
            except UmmParseError as exc:
                rejected.append(str(exc))
        hits = response.headers.get("CMR-Hits")
        return CmrPage(
            records=records,
            hits=int(hits) if hits is not None else body.get("hits"),
            search_after=response.headers.get("CMR-Search-After") if items else None,
            rejected=rejected,
        )

    def iter_pages(
        self,
        query: CmrQuery,
        revision_since: datetime | None = None,
        concept_ids: list[str] | None = None,
        window: tuple[datetime, datetime | None] | None = None,
        sort_key: str = "revision_date",
    ) -> Iterator[CmrPage]:
        """Every page of the query, in ``sort_key`` order, following CMR-Search-After."""
        params = query_params(query, self.page_size, revision_since, concept_ids, window, sort_key)
        with self._client() as client:
            search_after: str | None = None
            while True:
                page = self.search_page(client, params, search_after, query.data_url_pattern)
                if page.records or page.rejected:
                    yield page
                if not page.search_after or len(page.records) + len(page.rejected) < self.page_size:
                    return
                search_after = page.search_after

    def get(self, path: str, params: list[tuple[str, str]]) -> httpx.Response:
        """One CMR search request (other than granules), with the client's retries."""
        with self._client() as client:
            return self._get(client, path, params, {})

    def granules(self, query: CmrQuery, concept_ids: list[str], chunk: int = 100) -> dict[str, GranuleRecord | str]:
        """The current revision of each granule (one query per ``chunk`` ids, not one per
        granule); an unusable record maps to CMR's problem with it, a missing one is absent."""
        found: dict[str, GranuleRecord | str] = {}
        for start in range(0, len(concept_ids), chunk):
            wanted = concept_ids[start : start + chunk]
            for page in self.iter_pages(query, concept_ids=wanted):
                for record in page.records:
                    found[record.concept_id] = record
                for problem in page.rejected:
                    for concept_id in wanted:
                        if concept_id in problem:
                            found.setdefault(concept_id, f"CMR record for granule {concept_id} is unusable: {problem}")
        return found

    def granules_between(
        self, query: CmrQuery, start: datetime, end: datetime
    ) -> tuple[list[GranuleRecord], list[str]]:
        """The current revision of every granule overlapping [start, end], and CMR's records
        that could not be used (each problem names its granule)."""
        records: list[GranuleRecord] = []
        rejected: list[str] = []
        for page in self.iter_pages(query, window=(start, end)):
            records += page.records
            rejected += page.rejected
        return records, rejected

    def granule(self, query: CmrQuery, concept_id: str) -> GranuleRecord:
        """The current revision of one granule of the dataset."""
        found = self.granules(query, [concept_id]).get(concept_id)
        if isinstance(found, GranuleRecord):
            return found
        raise CmrError(found or missing_granule(query, concept_id))


def missing_granule(query: CmrQuery, concept_id: str) -> str:
    return (
        f"granule {concept_id} is not in CMR for {query.short_name} v{query.version} "
        f"({query.provider}); it may have been deleted or belong to another dataset"
    )
