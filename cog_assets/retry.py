"""Bounded, jittered retries shared by the HTTP clients (CMR, Earthdata, STAC API)."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def wait(seconds: float) -> None:
    """Sleep between retries (each client module re-exports it as a seam tests can patch)."""
    time.sleep(seconds)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with 50-100 % jitter so parallel runs do not retry in lockstep."""
    return min(cap, base * 2**attempt) * (0.5 + random.random() / 2)


def retry_after_seconds(header: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds, or None."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        return max(0.0, (parsed - datetime.now(timezone.utc)).total_seconds())


def retry_delay(retry_after: str | None, attempt: int, base: float, cap: float, longest: float) -> float:
    """The wait before the next attempt: the server's Retry-After (capped at ``longest``) when
    it sent one, jittered exponential backoff otherwise."""
    told = retry_after_seconds(retry_after)
    return min(told, longest) if told is not None else backoff(attempt, base, cap)


@dataclass(frozen=True)
class Retrying:
    """How often and how long a client retries: attempts, backoff base and cap, and the longest
    ``Retry-After`` it honours."""

    attempts: int
    base: float
    cap: float
    longest: float


def send_with_retries(
    send: Callable[[], httpx.Response],
    settled: Callable[[httpx.Response], bool],
    describe: Callable[[httpx.Response], str],
    policy: Retrying,
    sleep: Callable[[float], None],
) -> tuple[httpx.Response | None, str]:
    """Call ``send`` until ``settled`` accepts an answer (it raises for one that must not be
    retried; False for 429/5xx), with bounded, jittered waits. Returns the answer, or None and
    the last problem when every attempt failed."""
    problem = ""
    for attempt in range(policy.attempts):
        try:
            response = send()
        except httpx.TransportError as exc:  # connection errors and timeouts
            problem, delay = f"{type(exc).__name__}: {exc}", backoff(attempt, policy.base, policy.cap)
        else:
            if settled(response):
                return response, ""
            problem = f"HTTP {response.status_code}: {describe(response)}"
            delay = retry_delay(response.headers.get("Retry-After"), attempt, policy.base, policy.cap, policy.longest)
        if attempt + 1 < policy.attempts:
            sleep(delay)
    return None, problem
