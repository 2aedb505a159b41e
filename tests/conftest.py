"""Fixtures: real brokers, started by the tests on free ports; and the marks that tell which
tests need one (`broker`) or kill processes (`chaos`)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from aidc.runtime.brokers import spawned_broker
from protocols.endpoint import Endpoint

BROKERS = ["mosquitto", "embedded"]
pytest_plugins = ["pytester"]
"""`pytester` runs a user's test session in a subprocess (tests/aidc/test_pytest_plugin.py)."""
BROKER_FIXTURES = {
    "broker",
    "datacenter",
    "demo",
    "mosquitto",
    "secure_broker",
    "secured",
    "site",
    "site_recording",
}
"""The fixtures that start or use a real broker: here, in aidc/pytest_plugin.py and in test
modules."""
CHAOS = Path(__file__).parent / "chaos"


@pytest.fixture(scope="module", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    """A running broker of each kind, shared by the tests of one module."""
    with spawned_broker(request.param) as endpoint:
        yield endpoint


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `broker` the tests that use a broker fixture, and `chaos` and `broker` those in
    tests/chaos/ (each runs a live site on mosquitto, tests/chaos/site.py)."""
    for item in items:
        chaos = item.path.is_relative_to(CHAOS)
        if chaos or BROKER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)
        if chaos:
            item.add_marker(pytest.mark.chaos)
