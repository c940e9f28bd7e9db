"""One TLS context per process for every HTTP client the platform makes.

Clients are made per download attempt, per CMR query and per STAC API call (each with its own
settings and connection state); building each one's TLS context would load the CA bundle again,
about 25 ms of CPU every time (measured: 27 ms per client, 2.7 ms with the shared context).
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR),
    built once."""
    return httpx.create_ssl_context()
