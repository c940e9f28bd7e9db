"""The reliability suite: every case records its outcome; the session prints the table.

Each case asserts its own expected outcome and the suite-wide invariants: granules lost 0,
partial objects at final keys 0, secrets found 0 (see ``audit``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass
class CaseOutcome:
    case: str
    outcome: str
    granules_lost: int = 0
    partial_objects: int = 0
    secrets_found: int = 0


_OUTCOMES: list[CaseOutcome] = []


@pytest.fixture
def record() -> Callable[..., None]:
    """record(case, outcome, granules_lost=0, partial_objects=0, secrets_found=0)."""

    def add(case: str, outcome: str, **figures: int) -> None:
        _OUTCOMES.append(CaseOutcome(case, outcome, **figures))

    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    if not _OUTCOMES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability cases")
    width = max(len(o.case) for o in _OUTCOMES)
    for o in _OUTCOMES:
        write(f"{o.case:<{width}}  {o.outcome}")
    write(
        f"cases recorded: {len(_OUTCOMES)}; granules lost: {sum(o.granules_lost for o in _OUTCOMES)}; "
        f"partial objects at final keys: {sum(o.partial_objects for o in _OUTCOMES)}; "
        f"secrets found: {sum(o.secrets_found for o in _OUTCOMES)}"
    )
