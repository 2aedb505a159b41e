"""One embedded broker for a module's data centers (instead of the suite's two kinds)."""

from collections.abc import Iterator

import pytest

from aidc.runtime.brokers import spawned_broker
from protocols.endpoint import Endpoint


@pytest.fixture(scope="module")
def broker() -> Iterator[Endpoint]:
    """An embedded broker shared by a module's tests; each data center has a site of its own."""
    with spawned_broker("embedded") as endpoint:
        yield endpoint
