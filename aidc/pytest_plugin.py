"""pytest fixtures for data center tests, registered with pytest through an entry point:
`broker` (one broker for the session) and `datacenter` (a DataCenter on it, on a manual
clock, stopped after the test).

    async def test_a_gpu_off_the_bus_drains_its_node(datacenter):
        await datacenter.inject("r001-n01", "xid", code=79, gpu=3)
        drained = lambda s: s.find_events("control", message="node r001-n01 drained")
        await datacenter.wait_for(drained, timeout=30)

`@pytest.mark.datacenter(topology, seed=7, ...)` passes its arguments to DataCenter.start
(default: two HGX H100 racks, seed 0, manual clock); `--aidc-broker SPEC` picks the broker
(`embedded`, `mosquitto` or an mqtt:// URL). Each test gets a site of its own.
"""

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aidc.site.datacenter import DataCenter
    from protocols.endpoint import Endpoint

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is a test dependency
    pytest_asyncio = None  # type: ignore[assignment]

MARKER = "datacenter"


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--aidc-broker SPEC`."""
    parser.addoption(
        "--aidc-broker",
        default="embedded",
        metavar="SPEC",
        help="broker of the aidc fixtures: 'embedded' (default), 'mosquitto' or mqtt://host:port",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, so --strict-markers accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(topology=None, **options): the arguments of DataCenter.start for the "
        "`datacenter` fixture",
    )


@pytest.fixture(scope="session")
def broker(pytestconfig: pytest.Config) -> Iterator["Endpoint"]:
    """The broker of every data center in the session (started here unless a URL)."""
    from aidc.runtime.brokers import broker as broker_for

    with broker_for(pytestconfig.getoption("--aidc-broker")) as endpoint:
        yield endpoint


async def _datacenter(request: pytest.FixtureRequest, endpoint: "Endpoint") -> AsyncIterator[Any]:
    from aidc.site.datacenter import DataCenter

    marker = request.node.get_closest_marker(MARKER)
    args = marker.args if marker else ()
    options: dict[str, Any] = {"site": f"t-{secrets.token_hex(4)}"}
    options |= marker.kwargs if marker else {}
    async with DataCenter.start(*args, broker=endpoint, **options) as dc:
        yield dc


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def datacenter(
        request: pytest.FixtureRequest, broker: "Endpoint"
    ) -> AsyncIterator["DataCenter"]:
        """A running data center for one test (see `@pytest.mark.datacenter`)."""
        async for dc in _datacenter(request, broker):
            yield dc

else:  # pragma: no cover

    @pytest.fixture
    def datacenter() -> None:
        """Needs pytest-asyncio."""
        raise pytest.UsageError("aidc's datacenter fixture needs pytest-asyncio installed")
