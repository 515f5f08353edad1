"""Module-scoped servers the reliability scenarios share: one PostgreSQL and one moto server per test file.

Import the fixtures into a test module (``from tests.support.reliability_fixtures import
moto_fixture, postgres_url_fixture  # noqa: F401``: they are the fixtures ``moto`` and
``postgres_url``); a missing moto fails the module rather than skipping it.
"""

from collections.abc import Iterator

import pytest

from tests.moto_server import MotoServer, unavailable_reason
from tests.postgres import running_postgres


@pytest.fixture(scope="module", name="postgres_url")
def postgres_url_fixture() -> Iterator[str]:
    with running_postgres() as url:
        yield url


@pytest.fixture(scope="module", name="moto")
def moto_fixture() -> Iterator[MotoServer]:
    reason = unavailable_reason()
    if reason:
        pytest.fail(reason)
    server = MotoServer()
    yield server
    server.stop()
