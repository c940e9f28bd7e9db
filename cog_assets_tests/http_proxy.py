"""A loopback HTTP proxy in front of a real service that injects faults on demand.

Used in front of the real stac-fastapi-pgstac: queued faults answer instead of the API
(an HTTP status with a body, a ``Retry-After``, or a dropped connection); everything else is
forwarded unchanged. Every request is recorded.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class ProxyFault:
    status: int = 503
    body: bytes = b'{"code":"ServiceUnavailable","description":"injected fault"}'
    retry_after: str | None = None
    drop: bool = False  # close the connection without answering
    method: str | None = None  # only requests with this method take the fault


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: deque[ProxyFault] = deque()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, *faults: ProxyFault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def take(self, method: str) -> ProxyFault | None:
        with self._lock:
            if self.faults and self.faults[0].method in (None, method):
                return self.faults.popleft()
            return None


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            proxy.requests.append(
                {"method": self.command, "path": self.path, "headers": dict(self.headers.items())}
            )
            fault = proxy.take(self.command)
            if fault is not None:
                if fault.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(fault.body)))
                if fault.retry_after:
                    self.send_header("Retry-After", fault.retry_after)
                self.end_headers()
                self.wfile.write(fault.body)
                return
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length", "connection"}
            }
            upstream = httpx.request(
                self.command, f"{proxy.upstream}{self.path}", content=body, headers=headers, timeout=60
            )
            payload = upstream.content
            self.send_response(upstream.status_code)
            for key, value in upstream.headers.items():
                if key.lower() not in {"content-length", "transfer-encoding", "connection", "content-encoding"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 (http.server's names)

    return Handler
