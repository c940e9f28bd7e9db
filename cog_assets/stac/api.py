"""Publishing to a STAC API through its Transactions extension (stac-fastapi-pgstac).

Enabled by ``COG_ASSETS_STAC_API_URL``; ``COG_ASSETS_STAC_API_TOKEN`` (optional) is sent as a
bearer token, over https only and only to the API's own origin: a ``next`` link to another
origin, and any redirect, is refused with a message naming where it pointed. Collections
and items are upserted: POST, and on 409 PUT. Connection errors,
timeouts, 429 and 5xx are retried with bounded, jittered backoff; any other answer is an error
carrying the API's own message. Whether an item that already exists is replaced, skipped or
refused is the dataset's duplicate policy (``stac.duplicates`` in its YAML).
"""

import threading
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import quote

import httpx
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr, field_validator

from cog_assets import tokens
from cog_assets.http import tls_context
from cog_assets.retry import RETRYABLE_STATUS, Retrying, send_with_retries, wait
from cog_assets.sources.cmr.client import USER_AGENT
from cog_assets.stac.duplicates import Decision, asset_refs, decide
from cog_assets.stac.errors import DuplicateItemError, StacApiError
from cog_assets.stac.extent import covering_extent, extent_as_item

__all__ = ["Decision", "DuplicateItemError", "StacApi", "StacApiError", "asset_refs", "covering_extent", "decide"]

Outcome = Literal["created", "replaced", "skipped"]


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("code", "description", "detail") if body.get(k)]
        if parts:
            return ": ".join(parts)[:1000]
    return str(body)[:1000]


class StacApi(ConfigurableResource):
    """A STAC API with the Transactions extension; disabled when ``url`` is empty."""

    url: str | None = Field(default=None, description="API root, COG_ASSETS_STAC_API_URL")
    token: str | None = Field(default=None, description="bearer token (EnvVar COG_ASSETS_STAC_API_TOKEN)")
    timeout_seconds: float = 30.0
    max_attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0
    max_retry_after_seconds: float = 30.0
    insecure_testing_origins: list[str] = Field(
        default_factory=list,
        description="TESTING ONLY: http://<loopback address> origins that may receive the "
        "token over plain http (COG_ASSETS_INSECURE_TESTING_ORIGINS)",
    )
    # one request at a time per resource (a run's granule threads share it), so the API sees at
    # most one request per step holding a pool slot (README, "Limits on external services")
    _one_at_a_time: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("insecure_testing_origins")
    @classmethod
    def _loopback_only(cls, value: list[str]) -> list[str]:
        return [tokens.check_insecure_origin(entry) for entry in value]

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def _client(self) -> httpx.Client:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        return httpx.Client(base_url=(self.url or "").rstrip("/"), timeout=self.timeout_seconds, headers=headers,
                            verify=tls_context())

    def _auth(self, client: httpx.Client, method: str, path: str) -> dict[str, str]:
        """The Authorization header for one request; refuses another origin or plain http."""
        target = str(client.build_request(method, path).url)
        if tokens.origin(target) != tokens.origin(self.url or ""):
            raise StacApiError(
                f"{method} {target} is on another origin than COG_ASSETS_STAC_API_URL "
                f"({self.url}); refused, so neither the token nor the request goes there"
            )
        if not self.token:
            return {}
        problem = tokens.tls_problem(target, self.insecure_testing_origins, "COG_ASSETS_STAC_API_URL")
        if problem is not None:
            raise StacApiError(f"COG_ASSETS_STAC_API_TOKEN is set but {problem}; nothing was sent")
        return {"Authorization": f"Bearer {self.token}"}

    def _request(self, method: str, path: str, json: Any = None, ok: tuple[int, ...] = (200, 201)) -> httpx.Response:
        """One call with retries; returns answers in ``ok`` and 404/409, raises on the rest."""
        if not self.enabled:
            raise StacApiError("no STAC API is configured; set COG_ASSETS_STAC_API_URL")
        with self._one_at_a_time, self._client() as client:
            headers = self._auth(client, method, path)

            def settled(response: httpx.Response) -> bool:
                if response.is_redirect:
                    raise StacApiError(
                        f"the STAC API answered {method} {path} with a redirect (HTTP "
                        f"{response.status_code}) to {response.headers.get('Location')}; "
                        "redirects are not followed, so the token never leaves the API's "
                        "origin. Set COG_ASSETS_STAC_API_URL to the address the API serves"
                    )
                if response.status_code in ok or response.status_code in (404, 409):
                    return True
                if response.status_code not in RETRYABLE_STATUS:
                    raise StacApiError(
                        f"the STAC API refused {method} {path} with HTTP {response.status_code}: {_message(response)}"
                    )
                return False

            policy = Retrying(self.max_attempts, self.backoff_seconds, self.max_backoff_seconds, self.max_retry_after_seconds)
            response, problem = send_with_retries(
                lambda: client.request(method, path, json=json, headers=headers), settled, _message, policy, wait
            )
        if response is not None:
            return response
        raise StacApiError(
            f"the STAC API at {self.url} failed {self.max_attempts} times for {method} {path}; last "
            f"error: {problem}. Check COG_ASSETS_STAC_API_URL and the API's health; the item stays "
            "in storage, so re-materializing the partition (or the republish job) publishes it"
        )

    # -- collections -----------------------------------------------------------------------
    def get_collection(self, collection_id: str) -> dict[str, Any] | None:
        response = self._request("GET", f"/collections/{quote(collection_id)}")
        return None if response.status_code == 404 else response.json()

    def upsert_collection(
        self, collection: dict[str, Any], keep_extent: bool = False
    ) -> Literal["created", "replaced"]:
        """Create or update; ``keep_extent`` widens the new extent to cover the API's current one
        (so refreshing a collection's metadata never uncovers published items)."""
        response = self._request("POST", "/collections", json=collection)
        if response.status_code == 409:
            if keep_extent:
                current = self.get_collection(collection["id"])
                if current is not None:
                    widened = covering_extent(collection, [extent_as_item(current["extent"])])
                    collection = {**collection, "extent": widened} if widened else collection
            self._put(f"/collections/{quote(collection['id'])}", collection)
            return "replaced"
        return "created"

    def ensure_collection(self, collection: dict[str, Any], items: list[dict[str, Any]]) -> None:
        """The collection exists and its extent covers ``items`` (created or widened if not)."""
        current = self.get_collection(collection["id"])
        if current is None:
            widened = covering_extent(collection, items)
            self.upsert_collection({**collection, "extent": widened} if widened else collection)
            return
        widened = covering_extent(current, items)
        if widened is not None:
            fresh = {k: v for k, v in current.items() if k != "links"}
            self._put(f"/collections/{quote(collection['id'])}", {**fresh, "extent": widened})

    # -- items -----------------------------------------------------------------------------
    def item_url(self, collection_id: str, item_id: str) -> str:
        """Where a person (or pystac-client) finds the item in the API."""
        return f"{(self.url or '').rstrip('/')}{self._item_path(collection_id, item_id)}"

    def _item_path(self, collection_id: str, item_id: str = "") -> str:
        base = f"/collections/{quote(collection_id)}/items"
        return f"{base}/{quote(item_id)}" if item_id else base

    def get_item(self, collection_id: str, item_id: str) -> dict[str, Any] | None:
        response = self._request("GET", self._item_path(collection_id, item_id))
        return None if response.status_code == 404 else response.json()

    def upsert_item(self, item: dict[str, Any]) -> Literal["created", "replaced"]:
        collection_id = item["collection"]
        response = self._request("POST", self._item_path(collection_id), json=item)
        if response.status_code == 404:
            raise StacApiError(
                f"the STAC API has no collection {collection_id!r} for item {item['id']}: "
                f"{_message(response)}; materialize {collection_id}/stac_collection"
            )
        if response.status_code == 409:
            self._put(self._item_path(collection_id, item["id"]), item)
            return "replaced"
        return "created"

    def publish_item(self, item: dict[str, Any], decision: Decision) -> Outcome:
        """Carry out a :func:`decide` decision (a create that meets 409 becomes an update)."""
        if decision.action == "skip":
            return "skipped"
        return self.upsert_item(item)

    def delete_item(self, collection_id: str, item_id: str) -> bool:
        """Remove an item; False when the API did not have it."""
        response = self._request("DELETE", self._item_path(collection_id, item_id))
        return response.status_code != 404

    def iter_items(self, collection_id: str, limit: int = 1000) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following the API's ``next`` links."""
        response = self._request("GET", f"{self._item_path(collection_id)}?limit={limit}")
        while response.status_code != 404:
            page = response.json()
            yield from page.get("features", [])
            following = next((link for link in page.get("links", []) if link.get("rel") == "next"), None)
            if following is None or not page.get("features"):
                return
            if tokens.origin(following["href"]) != tokens.origin(self.url or ""):
                raise StacApiError(
                    f"the STAC API's next link {following['href']} points to another origin "
                    f"than COG_ASSETS_STAC_API_URL ({self.url}); refused, so neither the token "
                    "nor the request goes there. The API builds its links from another base URL "
                    "(behind a proxy: check its forwarded headers); or set "
                    "COG_ASSETS_STAC_API_URL to that address"
                )
            response = self._request(following.get("method", "GET"), following["href"], json=following.get("body"))

    def _put(self, path: str, payload: dict[str, Any]) -> None:
        response = self._request("PUT", path, json=payload)
        if response.status_code in (404, 409):
            raise StacApiError(f"the STAC API refused PUT {path} with HTTP {response.status_code}: {_message(response)}")
