"""The dataset's duplicate policy (``stac.duplicates``): what publishing an item the STAC API
may already hold will do, decided before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cog_assets.dataset import DuplicatePolicy
from cog_assets.stac import identity
from cog_assets.stac.errors import DuplicateItemError


@dataclass(frozen=True)
class Decision:
    """What publishing an item will do, and why (shown in the materialization metadata)."""

    action: Literal["create", "replace", "skip"]
    reason: str
    held: dict[str, Any] | None = None  # the item the API holds, if any

    def keeping(self, item: dict[str, Any]) -> Decision:
        """A skip must not leave the API pointing at objects the new item no longer keeps (a
        re-run of the same revision with new bytes, or a revision of identical content under a
        new prefix): those are removed once the item switches, so replace instead."""
        if self.action == "skip" and asset_refs(self.held) != asset_refs(item):
            return Decision("replace", "the STAC API's item points at objects this revision replaced", self.held)
        return self


def asset_refs(item: dict[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """Each asset's href and checksum: what an item points at."""
    assets = (item or {}).get("assets", {})
    return {name: (a.get("href"), a.get("file:checksum")) for name, a in assets.items()}


def decide(policy: DuplicatePolicy, item_id: str, new_revision: int, existing: dict[str, Any] | None) -> Decision:
    """Apply the duplicate policy to the item the API already holds (None: it holds none).

    A revision older than the API's is never published over it: that run used a stale CMR
    record and its partition should be re-materialized.
    """
    if existing is None:
        return Decision("create", "not in the STAC API yet")
    held = identity.revision(existing.get("properties", {}))
    if isinstance(held, int) and held > new_revision:
        raise DuplicateItemError(
            f"item {item_id}: the STAC API holds revision {held}, newer than revision "
            f"{new_revision} built by this run; re-materialize the partition to build the current one"
        )
    if held == new_revision:
        rule, which = policy.same_revision, f"the same CMR revision ({held})"
    else:
        rule, which = policy.new_revision, f"CMR revision {held}, this run has {new_revision}"
    if rule == "error":
        raise DuplicateItemError(
            f"item {item_id} is already in the STAC API with {which} and the dataset's "
            "stac.duplicates policy for that case is 'error'; delete the item from the API or "
            "change the policy to 'skip' or 'replace'"
        )
    return Decision("replace" if rule == "replace" else "skip", f"already published with {which}", existing)
