"""A CMR-compatible HTTP server on 127.0.0.1, the only stand-in for CMR and Earthdata.

It serves a catalogue the test configures with the shapes of the real responses in
``cog_assets_tests/fixtures/cmr``: UMM-G items like GES DISC's, the ``CMR-Hits``/``CMR-Took``/
``CMR-Request-Id`` headers, ``CMR-Search-After`` paging (absent on an empty page), 400s with
CMR's ``{"errors": [...]}`` bodies, the 2000 page-size limit, and injectable 429/5xx/slow/
timed-out answers. It also serves granule files behind a bearer token, like the Earthdata
download hosts, with a redirect to a second host name to test where the token goes.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

MAX_PAGE_SIZE = 2000
KNOWN_PARAMS = {
    "short_name",
    "version",
    "provider",
    "temporal[]",
    "revision_date[]",
    "bounding_box",
    "sort_key[]",
    "page_size",
    "concept_id[]",
}
EXPOSE_HEADERS = (
    "CMR-Hits, CMR-Request-Id, X-Request-Id, CMR-Scroll-Id, CMR-Search-After, CMR-Timed-Out, "
    "CMR-Shapefile-Original-Point-Count, CMR-Shapefile-Simplified-Point-Count"
)
UMM_CONTENT_TYPE = "application/vnd.nasa.cmr.umm_results+json;version=1.6.5; charset=utf-8"


def cmr_time(value: datetime) -> str:
    """CMR's millisecond UTC form, e.g. 2022-08-17T23:44:44.205Z."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}Z"
    )


def mixed_time(value: datetime, salt: str) -> str:
    """A revision date in one of the forms real CMR mixes within a single response:
    ``…T18:51:39.123Z``, ``…T18:51:39+0000`` and ``…T18:51:39Z`` (the last two drop the
    milliseconds, as CMR does)."""
    value = value.astimezone(timezone.utc)
    form = zlib.crc32(salt.encode()) % 3
    if form == 0:
        return cmr_time(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + ("+0000" if form == 1 else "Z")


def collection_id_of(short_name: str, version: str, provider: str) -> str:
    """A stable collection concept-id per (short name, version, provider)."""
    return f"C{1_000_000_000 + zlib.crc32(f'{short_name}.{version}'.encode()) % 999_999_999}-{provider}"


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Fault:
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    timed_out: bool = False
    body: bytes | None = None


@dataclass
class Granule:
    """One granule's current revision in the catalogue."""

    concept_id: str
    revision_id: int
    revision_date: datetime
    short_name: str
    version: str
    provider: str
    file_name: str
    begin: datetime
    end: datetime
    bbox: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)
    size_bytes: int | None = None
    md5: str | None = None
    data_path: str | None = None
    extra_urls: list[dict[str, str]] = field(default_factory=list)
    omit_data_url: bool = False

    @property
    def number(self) -> int:
        digits = self.concept_id[1:].split("-")[0]
        return int(digits) if digits.isdigit() else 0

    @property
    def sort_key(self) -> tuple[int, int]:
        return (int(self.revision_date.timestamp() * 1000), self.number)

    @property
    def start_key(self) -> tuple[int, int]:
        return (int(self.begin.timestamp() * 1000), self.number)

    @property
    def collection_id(self) -> str:
        return collection_id_of(self.short_name, self.version, self.provider)


class FakeCmr:
    """The server; use as a context manager. All state changes are thread-safe."""

    def __init__(self, token: str | None = "test-earthdata-token") -> None:
        self.token = token
        self._granules: dict[str, Granule] = {}
        self._order: list[tuple[tuple[int, int], str]] = []
        self._deleted: list[dict[str, Any]] = []
        self._unindexed: set[str] = set()  # added, but not searchable yet (late indexing)
        self._last_revision: dict[str, int] = {}  # a deletion is a revision too; re-ingests continue
        self._collections: set[tuple[str, str, str]] = set()
        self._start_order: tuple[int, list[tuple[tuple[int, int], str]]] = (-1, [])
        self._files: dict[str, bytes] = {}
        self._search_faults: deque[Fault] = deque()
        self._data_faults: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.on_download: Callable[[str], None] | None = None  # called with the path before serving
        self._version = 0
        self._hits_cache: dict[tuple[Any, int], int] = {}
        self._clock = datetime(2024, 1, 1, tzinfo=timezone.utc)
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeCmr:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alias_url(self) -> str:
        """The same server under another host name (a 'non-Earthdata host')."""
        return f"http://localhost:{self.port}"

    # -- catalogue -------------------------------------------------------------------------
    def _next_revision_date(self) -> datetime:
        """Like CMR's: the wall clock at millisecond precision, strictly increasing."""
        now = datetime.now(timezone.utc)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._clock = max(now, self._clock + timedelta(milliseconds=1))
        return self._clock

    def _new_granule(self, spec: dict[str, Any]) -> Granule:
        """A new granule from add_granule's arguments (caller holds the lock): revision 1, or,
        for a concept-id CMR deleted before (a re-ingest), the revision after its tombstone's."""
        number = spec.pop("concept_number", None) or 1_000_000_000 + len(self._granules) + len(self._deleted)
        provider = spec.setdefault("provider", "GES_DISC")
        concept_id = spec.pop("concept_id", None) or f"G{number}-{provider}"
        return Granule(
            concept_id=concept_id,
            revision_id=self._last_revision.get(concept_id, 0) + 1,
            revision_date=spec.pop("revision_date", None) or self._next_revision_date(),
            data_path=f"{spec['short_name']}.{spec['version']}/{spec['begin']:%Y/%j}/{quote(spec['file_name'])}",
            **spec,
        )

    def add_granule(self, *, content: bytes | None = None, indexed: bool = True, **spec: Any) -> Granule:
        """Add a granule (revision 1); ``content`` makes its file downloadable.

        Takes Granule's fields (short_name, version, file_name, begin, end, ...), plus
        optional provider, concept_number and revision_date. ``indexed=False`` keeps it out of
        searches, with its revision date, until :meth:`index` (CMR indexes asynchronously).
        """
        with self._lock:
            granule = self._new_granule(spec)
            if not indexed:
                self._unindexed.add(granule.concept_id)
            if content is not None:
                granule.size_bytes = len(content)
                granule.md5 = hashlib.md5(content).hexdigest()
                self._files[granule.data_path] = content
            self._put(granule)
            return granule

    def add_many(self, granules: list[dict[str, Any]], published_ago: timedelta = timedelta(days=1)) -> None:
        """Bulk add with the same arguments as add_granule (no file content): a history CMR
        published ``published_ago`` (revision dates a millisecond apart from then on)."""
        with self._lock:
            first = datetime.now(timezone.utc) - published_ago
            for n, spec in enumerate(granules):
                spec = {"revision_date": first + timedelta(milliseconds=n), **spec}
                granule = self._new_granule(spec)
                self._collections.add((granule.short_name, granule.version, granule.provider))
                self._granules[granule.concept_id] = granule
                self._order.append((granule.sort_key, granule.concept_id))
            self._order.sort()
            self._version += 1

    def index(self, concept_id: str) -> None:
        """Make a late-indexed granule searchable (its revision date stays the older one)."""
        with self._lock:
            self._unindexed.discard(concept_id)
            self._version += 1

    def _put(self, granule: Granule) -> None:
        self._collections.add((granule.short_name, granule.version, granule.provider))
        self._version += 1
        old = self._granules.get(granule.concept_id)
        if old is not None:
            index = bisect.bisect_left(self._order, (old.sort_key, old.concept_id))
            del self._order[index]
        self._granules[granule.concept_id] = granule
        bisect.insort(self._order, (granule.sort_key, granule.concept_id))

    def revise(self, concept_id: str, content: bytes | None = None, **changes: Any) -> Granule:
        """A new revision (revision-id + 1, a later revision-date), optionally new content."""
        with self._lock:
            old = self._granules[concept_id]
            values = {**old.__dict__, **changes}
            values["revision_id"] = old.revision_id + 1
            values["revision_date"] = changes.get("revision_date") or self._next_revision_date()
            granule = Granule(**values)
            if content is not None:
                granule.size_bytes = len(content)
                granule.md5 = hashlib.md5(content).hexdigest()
                assert granule.data_path is not None
                granule.data_path = f"{granule.data_path.rsplit('/', 1)[0]}/{quote(granule.file_name)}"
                self._files[granule.data_path] = content
            self._put(granule)
            return granule

    def delete(self, concept_id: str) -> None:
        with self._lock:
            granule = self._granules.pop(concept_id)
            self._last_revision[concept_id] = granule.revision_id + 1  # the tombstone's revision
            self._version += 1
            index = bisect.bisect_left(self._order, (granule.sort_key, granule.concept_id))
            del self._order[index]
            self._unindexed.discard(concept_id)
            deleted_at = self._next_revision_date()
            self._deleted.append(
                {
                    "at": deleted_at,  # exact, as CMR keeps it; rendered in a mixed form
                    "concept-id": concept_id,
                    "revision-date": mixed_time(deleted_at, concept_id),
                    "parent-collection-id": granule.collection_id,
                    "granule-ur": f"{granule.short_name}.{granule.version}:{granule.file_name}",
                    "provider": granule.provider,
                }
            )

    def granule(self, concept_id: str) -> Granule:
        return self._granules[concept_id]

    def set_file(self, granule: Granule, content: bytes) -> None:
        """Replace the bytes served for a granule without telling CMR (a corrupt file)."""
        assert granule.data_path is not None
        self._files[granule.data_path] = content

    def file_url(self, granule: Granule, host: str | None = None) -> str:
        return f"{host or self.url}/data/{granule.data_path}"

    # -- faults ----------------------------------------------------------------------------
    def fail_search(self, *faults: Fault) -> None:
        with self._lock:
            self._search_faults.extend(faults)

    def fail_download(self, granule: Granule, *faults: Fault) -> None:
        assert granule.data_path is not None
        with self._lock:
            self._data_faults.setdefault(granule.data_path, deque()).extend(faults)

    def _take_search_fault(self) -> Fault | None:
        with self._lock:
            return self._search_faults.popleft() if self._search_faults else None

    def _take_data_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._data_faults.get(path)
            return queue.popleft() if queue else None

    # -- search ----------------------------------------------------------------------------
    def search(
        self, params: list[tuple[str, str]], search_after: str | None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer a granules.umm_json query: (status, headers, body)."""
        values: dict[str, list[str]] = {}
        for name, value in params:
            if name not in KNOWN_PARAMS:
                return 400, {}, {"errors": [f"Parameter [{name}] was not recognized."]}
            values.setdefault(name, []).append(value)
        try:
            page_size = int(values.get("page_size", ["10"])[0])
        except ValueError:
            page_size = -1
        if not 0 <= page_size <= MAX_PAGE_SIZE:
            return 400, {}, {"errors": ["page_size must be a number between 0 and 2000"]}
        sort = values.get("sort_key[]", ["revision_date"])
        if sort not in (["revision_date"], ["+revision_date"], ["start_date"], ["+start_date"]):
            return 400, {}, {"errors": [f"This fake only sorts by revision_date or start_date, not {sort}."]}
        by_start = sort[0].lstrip("+") == "start_date"
        try:
            temporal = [_range(v) for v in values.get("temporal[]", [])]
            revision = [_range(v) for v in values.get("revision_date[]", [])]
            bbox = (
                tuple(float(x) for x in values["bounding_box"][0].split(","))
                if "bounding_box" in values
                else None
            )
        except ValueError as exc:
            return 400, {}, {"errors": [str(exc)]}
        if bbox is not None and len(bbox) != 4:
            return 400, {}, {"errors": ["bounding_box must be west,south,east,north"]}
        concept_ids = set(values.get("concept_id[]", []))
        after: tuple[int, int] | None = None
        if search_after:
            try:
                decoded = json.loads(search_after)
                after = (int(decoded[1]), int(decoded[2]))
            except (ValueError, IndexError, TypeError):
                return 400, {}, {"errors": [f"Invalid CMR-Search-After header value: {search_after}"]}

        def matches(g: Granule) -> bool:
            if g.concept_id in self._unindexed:
                return False
            if "short_name" in values and g.short_name not in values["short_name"]:
                return False
            if "version" in values and g.version not in values["version"]:
                return False
            if "provider" in values and g.provider not in values["provider"]:
                return False
            if concept_ids and g.concept_id not in concept_ids:
                return False
            for start, end in temporal:
                if (start and g.end < start) or (end and g.begin > end):
                    return False
            for start, end in revision:
                if (start and g.revision_date < start) or (end and g.revision_date > end):
                    return False
            if bbox is not None:
                w, s, e, n = bbox
                gw, gs, ge, gn = g.bbox
                if gw > e or ge < w or gs > n or gn < s:
                    return False
            return True

        with self._lock:
            order = self._by_start() if by_start else self._order
            sort_of = (lambda g: g.start_key) if by_start else (lambda g: g.sort_key)
            if after is not None:
                start_index = bisect.bisect_right(order, (after, "\uffff"))
            elif not by_start and revision and revision[0][0] is not None:
                key = (int(revision[0][0].timestamp() * 1000), 0)
                start_index = bisect.bisect_left(order, (key, ""))
            else:
                start_index = 0
            if concept_ids:
                candidates = sorted(
                    (sort_of(self._granules[c]), c) for c in concept_ids if c in self._granules
                )
                candidates = [c for c in candidates if after is None or c[0] > after]
            else:
                candidates = order[start_index:]
            page: list[Granule] = []
            for _, concept_id in candidates:
                granule = self._granules[concept_id]
                if matches(granule):
                    page.append(granule)
                    if len(page) >= page_size:
                        break
            hits_key = (tuple(params), self._version)
            if hits_key not in self._hits_cache:
                self._hits_cache[hits_key] = sum(
                    1 for g in self._granules.values() if matches(g)
                )
            hits = self._hits_cache[hits_key]
            items = [self._umm_item(g) for g in page]
        headers = {"CMR-Hits": str(hits)}
        if page:
            last = sort_of(page[-1])
            headers["CMR-Search-After"] = json.dumps(
                [page[-1].provider.lower(), last[0], last[1]], separators=(",", ":")
            )
        return 200, headers, {"hits": hits, "took": 3, "items": items}

    def _by_start(self) -> list[tuple[tuple[int, int], str]]:
        """The catalogue in start-date order (rebuilt when it changed; caller holds the lock)."""
        if self._start_order[0] != self._version:
            order = sorted((g.start_key, c) for c, g in self._granules.items())
            self._start_order = (self._version, order)
        return self._start_order[1]

    def deleted_granules(self, params: list[tuple[str, str]]) -> tuple[int, Any]:
        """Like CMR's: provider-wide unless ``parent_collection_id`` is given; ``revision_date``
        is required and at most one year back."""
        values = dict(params)
        since = values.get("revision_date")
        if not since:
            return 400, {"errors": ["One revision date is required for deleted granules search."]}
        try:
            since_time = _parse_time(since)
        except ValueError:
            return 400, {"errors": [f"[{since}] is not a valid datetime"]}
        if since_time < datetime.now(timezone.utc) - timedelta(days=365):
            return 400, {"errors": ["Revision date must be within one year of today."]}
        provider, collection = values.get("provider"), values.get("parent_collection_id")
        with self._lock:
            return 200, [
                {k: v for k, v in d.items() if k not in ("provider", "at")} | {"provider-id": d["provider"]}
                for d in self._deleted
                if d["at"] >= since_time
                and (not provider or d["provider"] == provider)
                and (not collection or d["parent-collection-id"] == collection)
            ]

    def collections(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        """``collections.umm_json`` by short_name, version, provider (meta only)."""
        values = dict(params)
        with self._lock:
            found = sorted(
                c for c in self._collections
                if all(values.get(k) in (None, v) for k, v in zip(("short_name", "version", "provider"), c))
            )
        items = [{"meta": {"concept-id": collection_id_of(*c), "provider-id": c[2], "concept-type": "collection"},
                  "umm": {"ShortName": c[0], "Version": c[1]}} for c in found]
        return {"hits": len(items), "took": 2, "items": items}

    def _umm_item(self, g: Granule) -> dict[str, Any]:
        """A UMM-G 1.6.5 item shaped like GES DISC's (see the GPM fixture)."""
        data_url = f"{self.url}/data/{g.data_path}"
        related: list[dict[str, str]] = []
        if not g.omit_data_url:
            related.append(
                {"URL": data_url, "Type": "GET DATA", "Description": f"Download {g.file_name}"}
            )
        related += [
            {
                "URL": f"s3://gesdisc-cumulus-prod-protected/{g.data_path}",
                "Type": "GET DATA VIA DIRECT ACCESS",
                "Description": "This link provides direct download access via S3 to the granule",
            },
            {
                "URL": f"{self.url}/opendap/{g.data_path}",
                "Type": "USE SERVICE API",
                "Subtype": "OPENDAP DATA",
                "Description": "The OPENDAP location for the granule.",
                "MimeType": "application/x-hdf",
            },
            {
                "URL": f"{self.url}/s3credentials",
                "Type": "VIEW RELATED INFORMATION",
                "Description": "api endpoint to retrieve temporary credentials valid for "
                "same-region direct s3 access",
            },
            *g.extra_urls,
        ]
        archive: dict[str, Any] = {"Name": g.file_name}
        if g.size_bytes is not None:
            archive.update(SizeInBytes=g.size_bytes, Size=g.size_bytes / 1024**2, SizeUnit="MB")
        if g.md5 is not None:
            archive["Checksum"] = {"Value": g.md5, "Algorithm": "MD5"}
        w, s, e, n = g.bbox
        return {
            "meta": {
                "concept-type": "granule",
                "concept-id": g.concept_id,
                "revision-id": g.revision_id,
                "native-id": f"{g.short_name}.{g.version}:{g.file_name}",
                "collection-concept-id": g.collection_id,
                "provider-id": g.provider,
                "format": "application/vnd.nasa.cmr.umm+json",
                "revision-date": mixed_time(g.revision_date, f"{g.concept_id}:{g.revision_id}"),
            },
            "umm": {
                "TemporalExtent": {
                    "RangeDateTime": {
                        "BeginningDateTime": cmr_time(g.begin),
                        "EndingDateTime": cmr_time(g.end),
                    }
                },
                "GranuleUR": f"{g.short_name}.{g.version}:{g.file_name}",
                "SpatialExtent": {
                    "HorizontalSpatialDomain": {
                        "Geometry": {
                            "BoundingRectangles": [
                                {
                                    "WestBoundingCoordinate": w,
                                    "EastBoundingCoordinate": e,
                                    "NorthBoundingCoordinate": n,
                                    "SouthBoundingCoordinate": s,
                                }
                            ]
                        }
                    }
                },
                "ProviderDates": [
                    {"Date": cmr_time(g.revision_date), "Type": "Insert"},
                    {"Date": cmr_time(g.revision_date), "Type": "Update"},
                ],
                "CollectionReference": {"ShortName": g.short_name, "Version": g.version},
                "DataGranule": {
                    "DayNightFlag": "Unspecified",
                    "Identifiers": [
                        {"Identifier": g.file_name, "IdentifierType": "ProducerGranuleId"}
                    ],
                    "ProductionDateTime": cmr_time(g.revision_date),
                    "ArchiveAndDistributionInformation": [archive],
                },
                "RelatedUrls": related,
                "MetadataSpecification": {
                    "URL": "https://cdn.earthdata.nasa.gov/umm/granule/v1.6.5",
                    "Name": "UMM-G",
                    "Version": "1.6.5",
                },
            },
        }

    def file_for(self, path: str) -> bytes | None:
        return self._files.get(path)

    def searches(self) -> Iterator[dict[str, Any]]:
        return (r for r in list(self.requests) if r["path"].startswith("/search/granules"))


class _QuietServer(ThreadingHTTPServer):
    """Clients that time out and hang up are part of the tests, not errors."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _range(value: str) -> tuple[datetime | None, datetime | None]:
    if "," not in value:
        raise ValueError(f"[{value}] is not a valid datetime range: expected start,end")
    start, end = value.split(",", 1)
    try:
        return (_parse_time(start) if start else None, _parse_time(end) if end else None)
    except ValueError:
        raise ValueError(f"[{value}] is not a valid datetime range") from None


def _handler_for(server: FakeCmr) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(
            self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Access-Control-Expose-Headers", EXPOSE_HEADERS)
            self.send_header("CMR-Request-Id", str(uuid.uuid4()))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload, separators=(",", ":")).encode()
            content_type = UMM_CONTENT_TYPE if status == 200 else "application/json;charset=utf-8"
            self._send(status, body, content_type, headers)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            params = parse_qsl(parts.query, keep_blank_values=True)
            server.requests.append(
                {"path": parts.path, "params": params, "headers": dict(self.headers.items()),
                 "host": self.headers.get("Host", "")}
            )
            if parts.path == "/search/granules.umm_json":
                self._search(params)
            elif parts.path == "/search/deleted-granules.json":
                fault = server._take_search_fault()
                if fault is not None and fault.status != 200:
                    self._json(fault.status, {"errors": [f"injected fault {fault.status}"]})
                    return
                self._json(*server.deleted_granules(params))
            elif parts.path == "/search/collections.umm_json":
                self._json(200, server.collections(params))
            elif parts.path.startswith("/data/"):
                self._data(unquote(parts.path[len("/data/") :]), params)
            elif parts.path.startswith("/redirect/"):
                target = dict(params).get("to", "")
                self._send(302, b"", "text/plain", {"Location": target})
            else:
                self._json(404, {"errors": [f"Unknown path {parts.path}"]})

        def _search(self, params: list[tuple[str, str]]) -> None:
            fault = server._take_search_fault()
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.timed_out:
                    status, headers, body = server.search(
                        params, self.headers.get("CMR-Search-After")
                    )
                    body["items"] = body["items"][: len(body["items"]) // 2]
                    self._json(200, body, {**headers, "CMR-Timed-Out": "true"})
                    return
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                if fault.body is not None:
                    self._send(fault.status, fault.body, UMM_CONTENT_TYPE, headers)
                    return
                if fault.status != 200:
                    self._json(fault.status, {"errors": [f"injected fault {fault.status}"]}, headers)
                    return
            status, headers, body = server.search(params, self.headers.get("CMR-Search-After"))
            start = time.monotonic()
            headers["CMR-Took"] = str(int((time.monotonic() - start) * 1000))
            self._json(status, body, headers)

        def _data(self, path: str, params: list[tuple[str, str]]) -> None:
            fault = server._take_data_fault(quote(path, safe="/"))
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                self._send(fault.status, fault.body or b"injected fault", "text/plain")
                return
            if server.token is not None:
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._send(
                        401,
                        b"HTTP Basic: Access denied. Unauthorized: token missing or invalid",
                        "text/plain",
                    )
                    return
            content = server.file_for(quote(path, safe="/"))
            if content is None:
                self._send(404, b"Not Found", "text/plain")
                return
            if server.on_download is not None:
                server.on_download(path)
            self._send(200, content, "application/octet-stream")

    return Handler
