"""Fixtures: real brokers, started by the tests on free ports."""

from collections.abc import Iterator

import pytest

from aidc.runtime.brokers import spawned_broker
from protocols.endpoint import Endpoint

BROKERS = ["mosquitto", "embedded"]
pytest_plugins = ["pytester"]
"""`pytester` runs a user's test session in a subprocess (tests/aidc/test_pytest_plugin.py)."""


@pytest.fixture(scope="module", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    """A running broker of each kind, shared by the tests of one module."""
    with spawned_broker(request.param) as endpoint:
        yield endpoint
