"""pytest plugin for bin/check-floors: deselect (not skip) the tests that need PostgreSQL and
the STAC API, whose test-only packages (stac-fastapi-pgstac, pypgstac) would pull the
libraries under test above their floors. Load with ``-p cog_assets_tests.without_services``."""

from __future__ import annotations

import pytest

SERVICE_FIXTURES = {"postgres", "stac_api_server", "stac_api_url"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needing = [item for item in items if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if needing:
        config.hook.pytest_deselected(items=needing)
        items[:] = [item for item in items if item not in needing]
