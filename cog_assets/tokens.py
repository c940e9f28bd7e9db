"""Where a bearer token may be sent: only over TLS, only to the hosts it belongs to.

Production sends tokens over ``https`` only. Test servers on this machine speak plain
``http``; they are allowed one by one, by scheme and host, through a setting whose name says
what it is (``COG_ASSETS_INSECURE_TESTING_ORIGINS``, resource field
``insecure_testing_origins``) and which accepts nothing but loopback addresses, so it cannot
open a production deployment to plain http by mistake.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

INSECURE_TESTING_ENV = "COG_ASSETS_INSECURE_TESTING_ORIGINS"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_insecure_origin(entry: str) -> str:
    """``entry`` if it is ``http://<loopback address>`` (no port, no path); ValueError otherwise."""
    parts = urlsplit(entry.strip())
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"  # resolves to loopback only (RFC 6761)
    bare = parts.port is None and parts.path in ("", "/") and not parts.query
    if parts.scheme != "http" or not loopback or not bare:
        raise ValueError(
            f"insecure_testing_origins ({INSECURE_TESTING_ENV}) entry {entry!r} is not "
            "http://<loopback address>, e.g. http://127.0.0.1, http://[::1] or "
            "http://localhost: it lets a test server on this machine receive tokens over plain "
            "http, and accepts nothing else (a loopback address, by scheme and host, without "
            "port or path)"
        )
    return f"http://{parts.netloc.lower()}"


def parse_insecure_origins(text: str) -> list[str]:
    """The comma-separated value of COG_ASSETS_INSECURE_TESTING_ORIGINS, each entry checked."""
    try:
        return [check_insecure_origin(e) for e in text.split(",") if e.strip()]
    except ValueError as exc:
        raise ValueError(f"{INSECURE_TESTING_ENV}={text!r}: {exc}") from None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def is_insecure_testing(url: str, insecure_origins: list[str]) -> bool:
    scheme, host, _ = origin(url)
    return scheme == "http" and any(origin(o)[1] == host for o in insecure_origins)


def tls_problem(url: str, insecure_origins: list[str], setting: str) -> str | None:
    """Why a token may not travel to ``url`` for lack of TLS (None: it may)."""
    scheme, host, _ = origin(url)
    if scheme == "https" or is_insecure_testing(url, insecure_origins):
        return None
    return (
        f"{scheme}://{host} is plain http and tokens only travel over https; use the https "
        f"address ({setting}), or, for a test server on this machine, allow it with "
        f"{INSECURE_TESTING_ENV}=http://{host}"
    )


def host_allowed(url: str, hosts: list[str]) -> bool:
    """The URL's host is one of ``hosts`` or a subdomain of one."""
    host = origin(url)[1]
    return any(host == h.lower() or host.endswith("." + h.lower()) for h in hosts)
