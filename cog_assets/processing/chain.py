"""The work for one granule, as plain functions: stage → convert → describe.

The Dagster chain asset runs :func:`process` for each granule of a run's partitions (several
at once, ``defs.granule_runs``), so one bad granule fails alone while its neighbours
materialize. The steps themselves are in ``processing.steps``. Each step writes its
outputs under the granule's revision prefixes (``store.layout``), where they cannot clobber
what the live item points at; ``describe`` commits the new revision (``revisions.commit``). A
step that is not selected loads what it needs from storage, so ``cog`` or ``stac_item`` can
be re-run alone. Every decision that can refuse a revision (a newer one already stored, the
STAC API's duplicate policy) is taken before anything is written, and a failed attempt removes
what it wrote, so the previous revision stays intact.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from cog_assets.processing import revisions
from cog_assets.processing.steps import (
    STEPS,
    Attempt,
    GranuleOutcome,
    Services,
    StepDone,
    convert,
    describe,
    load_cog,
    stage,
    stored_metadata,
)
from cog_assets.sources.cmr.records import GranuleRecord
from cog_assets.stac import items as stac
from cog_assets.stac import publishing
from cog_assets.stac.api import DuplicateItemError, StacApiError
from cog_assets.store.layout import granule_key
from cog_assets.store.objects import StorageError

__all__ = ["STEPS", "GranuleOutcome", "Services", "StepDone", "process", "stored_metadata", "steps_needed"]


def publish_if_current(svc: Services, record: GranuleRecord) -> str | None:
    """If this CMR revision is already the live one, make sure the API has it and nothing stale
    is left, and say how it was published; None when the granule still has to be processed.

    Lets a retried day skip the granules an earlier run finished, including ones stored while
    the STAC API was down (they are published now).
    """
    ds = svc.dataset.id
    live = svc.archive.read_record(ds, record.concept_id)
    if live is None or live.revision_id != record.revision_id or not live.file_name:
        return None
    try:
        stored = svc.archive.read_item(ds, live)
    except StorageError:
        return None
    decision = publishing.plan_item(svc.stac_api, svc.dataset, live.item_id, live.revision_id)
    decision = decision.keeping(stored) if decision else None
    published = publishing.publish_item(svc.stac_api, svc.dataset, stored, decision) if decision else "not configured"
    revisions.clean_up(svc.archive, svc.stac_api, svc.dataset, live, stored)
    return published


def steps_needed(svc: Services, concept_id: str, selected: set[str]) -> set[str]:
    """The selected steps, plus those upstream that this granule has never had done: a
    materialize from the ``stac_item`` (or ``cog``) page of a granule not staged yet runs the
    whole chain; for a staged granule, only the selected steps are redone."""
    if "granule" in selected:
        return selected
    staged = revisions.newest_staged(svc.archive, svc.dataset.id, concept_id)
    if staged is None:
        return set(STEPS) if "stac_item" in selected else selected | {"granule"}
    if "stac_item" in selected and "cog" not in selected:
        live = svc.archive.read_record(svc.dataset.id, concept_id)
        item = svc.archive.read_item(svc.dataset.id, live) if live and live.revision_id == staged.revision_id else None
        if revisions.pending_cog(svc.archive, svc.dataset.id, staged, item) is None:
            return selected | {"cog"}
    return selected


def _record_for(svc: Services, concept_id: str, found: GranuleRecord | str | None, steps: set[str]) -> GranuleRecord:
    """The revision to work on: CMR's current one when staging, else the newest staged one."""
    if "granule" in steps:
        if isinstance(found, GranuleRecord):
            return found
        raise svc.source.unavailable(concept_id, found)
    record = revisions.newest_staged(svc.archive, svc.dataset.id, concept_id)
    if record is None:
        raise StorageError(
            f"granule {concept_id} has not been staged; materialize {svc.dataset.id}/granule for "
            "this partition first"
        )
    return record


def process(
    svc: Services,
    concept_id: str,
    found: GranuleRecord | str | None,
    steps: set[str],
    scratch: Path,
    skip_current: bool = False,
) -> GranuleOutcome:
    """Run the selected steps for one granule; any failure is caught, described, and what the
    attempt wrote is removed (the live revision stays intact).

    ``found`` is what ``CmrClient.granules`` returned for it (needed when staging). With
    ``skip_current``, a granule whose live item already has this revision is not redone.
    """
    outcome = GranuleOutcome(concept_id)
    attempt: Attempt | None = None
    workdir = Path(tempfile.mkdtemp(dir=scratch))
    try:
        steps = steps_needed(svc, concept_id, steps)
        record = outcome.record = _record_for(svc, concept_id, found, steps)
        attempt = Attempt(record, workdir)
        revisions.check_not_stale(svc.archive.read_record(svc.dataset.id, concept_id), record)
        if skip_current and (current := publish_if_current(svc, record)) is not None:
            outcome.current = current
            return outcome
        decision, unreachable = None, None
        if "stac_item" in steps:  # before writing: a refusal leaves storage untouched
            try:
                decision = publishing.plan_item(svc.stac_api, svc.dataset, record.item_id, record.revision_id)
            except DuplicateItemError:
                raise
            except StacApiError as exc:  # stored anyway: a retry or the republish job publishes it
                unreachable = exc
        if "granule" in steps:
            outcome.done.append(StepDone("granule", stage(svc, attempt)))
        if "cog" in steps:
            outcome.done.append(StepDone("cog", convert(svc, attempt, outcome)))
        elif "stac_item" in steps:
            load_cog(svc, attempt)
        if "stac_item" in steps:
            outcome.done.append(StepDone("stac_item", describe(svc, attempt, decision, outcome, unreachable is None)))
        if unreachable is not None:
            raise unreachable
    except Exception as exc:  # noqa: BLE001 (one granule's failure must not stop the range)
        outcome.error = describe_failure(concept_id, outcome.record, exc)
        if attempt is not None:
            revisions.roll_back(svc.archive, svc.dataset.id, concept_id, attempt.written, outcome.warnings.append)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome


def describe_failure(concept_id: str, record: GranuleRecord | None, exc: Exception) -> str:
    """One line: which granule, then the cause as raised (without repeating the granule)."""
    name = f" ({record.file_name})" if record is not None and record.file_name else ""
    message = str(exc)
    for prefix in (f"granule {concept_id}{name}: ", f"granule {concept_id}: "):
        message = message.replace(prefix, "")  # nested causes name the granule again
    return f"granule {concept_id}{name}: {type(exc).__name__}: {message}"


def live_objects(svc: Services, record: GranuleRecord) -> dict[str, str]:
    """URIs of a live granule's objects (for the day manifest)."""
    storage, ds = svc.archive.storage, svc.dataset.id
    item = svc.archive.read_item(ds, record)
    return {
        "granule": storage.uri(granule_key(ds, record.concept_id, record.revision_id, record.require_file_name())),
        "cog": item["assets"][stac.COG_ASSET]["href"],
        "stac_item": storage.uri(svc.archive.item_key(ds, record)),
    }
