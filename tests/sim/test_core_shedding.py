"""A core that sheds telemetry says so: its Prometheus counter counts the drops, and a warning
event names them, at most every SHED_WARNING_EVERY_S. And its summary counts the GPU samples
it took in, as a rate per tick and as a running total."""

import time
import types

import aiomqtt
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from protocols.codec import encode
from protocols.endpoint import Endpoint
from protocols.inbox import charge
from protocols.messages import Death
from protocols.topics import AgentTopic, agent_topic
from sim import service
from sim.metrics import CoreMetrics, Selection, render
from sim.service import INBOX_HOLD_S, SHED_WARNING_EVERY_S, CoreService
from sim.world import TickReport
from tests.samples import SAMPLES, TELEMETRY

SITE = "s1"
PAYLOAD = bytes(1000)


def message(kind: AgentTopic, agent: str, payload: bytes) -> aiomqtt.Message:
    """A message on an agent's own topic, as aiomqtt's reader makes it."""
    return aiomqtt.Message(agent_topic(kind, SITE, agent, agent), payload, 0, False, 0, None)


def received(core: CoreService, kind: AgentTopic, agent: str, payload: bytes) -> None:
    """A message reaches the core's fleet connection, as aiomqtt's reader hands it over."""
    core.link.inbox.put_nowait(message(kind, agent, payload))


def small_core() -> CoreService:
    """A core (never connected) whose fleet connection holds two telemetry messages."""
    each = charge(message(AgentTopic.TELEMETRY, "r1", PAYLOAD))
    return CoreService(Endpoint("127.0.0.1", 1), SITE, inbox_bytes=2 * each)


def dropped(core: CoreService) -> float:
    text = b"".join(render(CoreMetrics(core).snapshot(Selection.parse("")))).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [sample] = families["aidc_telemetry_dropped"].samples
    assert sample.name == "aidc_telemetry_dropped_total"
    assert sample.labels == {"site": SITE}
    return sample.value


def test_the_metrics_count_the_telemetry_the_core_shed() -> None:
    core = small_core()
    assert dropped(core) == 0
    birth = encode(SAMPLES["birth"][0])
    for n in range(10):
        received(core, AgentTopic.TELEMETRY, f"r{n % 3}", PAYLOAD)
        received(core, AgentTopic.BIRTH, f"r{n % 3}", birth)
    assert core.telemetry_shed_total == 8
    assert dropped(core) == 8
    views = core.build_views(TickReport(1.0), core._pace(1.0))
    assert views.summary.telemetry_dropped == 8
    assert core.link.inbox.qsize() == 12  # ten births and the two newest telemetry messages


async def test_the_summary_counts_gpu_samples_per_second_and_since_the_start() -> None:
    core = small_core()
    birth = SAMPLES["birth"][0]
    await core._on_message(message(AgentTopic.BIRTH, birth.agent, encode(birth)))
    rows = TELEMETRY.gpu.rows if TELEMETRY.gpu else 0
    assert rows > 0
    summaries = []
    for seq, elapsed_s in ((41, 0.5), (42, 2.0)):
        telemetry = msgspec.structs.replace(TELEMETRY, seq=seq)
        await core._on_message(message(AgentTopic.TELEMETRY, birth.agent, encode(telemetry)))
        summaries.append(core.build_views(TickReport(1.0), core._pace(elapsed_s)).summary)
    assert [s.gpu_samples_per_s for s in summaries] == [rows / 0.5, rows / 2.0]
    assert [s.gpu_samples for s in summaries] == [rows, 2 * rows]
    junk = msgspec.structs.replace(TELEMETRY, seq=43, session=99)  # an old session: rejected
    await core._on_message(message(AgentTopic.TELEMETRY, birth.agent, encode(junk)))
    assert core.build_views(TickReport(1.0), core._pace(1.0)).summary.gpu_samples == 2 * rows


class WallClock:
    """The core's wall clock (time.monotonic), moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    wall = WallClock()
    fake = types.SimpleNamespace(monotonic=wall.monotonic, time=time.time)
    monkeypatch.setattr(service, "time", fake)
    return wall


def warnings(core: CoreService) -> list[str]:
    return [e.message for e in core.events if e.kind == "telemetry-shed"]


def test_a_warning_names_the_shortfall_at_most_every_ten_seconds(clock: WallClock) -> None:
    core = small_core()
    report = TickReport(0.0)
    core._record(report)
    assert warnings(core) == []

    clock.now += 1.0
    for n in range(7):
        received(core, AgentTopic.TELEMETRY, f"r{n % 4}", PAYLOAD)
    core._record(report)
    assert warnings(core) == [
        "the core shed 5 telemetry messages of 4 agents in the last 1.0 s: its ingest is behind"
    ]
    [event] = core.events
    assert (event.severity, event.subject) == ("warning", "core")

    clock.now += SHED_WARNING_EVERY_S / 2
    received(core, AgentTopic.TELEMETRY, "r9", PAYLOAD)
    core._record(report)
    assert len(warnings(core)) == 1, "warned again within SHED_WARNING_EVERY_S"

    clock.now += SHED_WARNING_EVERY_S / 2
    received(core, AgentTopic.TELEMETRY, "r9", PAYLOAD)
    core._record(report)
    assert warnings(core)[1:] == [
        "the core shed 2 telemetry messages of 2 agents in the last 10.0 s: its ingest is behind"
    ]

    clock.now += 3 * SHED_WARNING_EVERY_S
    core._record(report)
    assert len(warnings(core)) == 2, "warned with nothing shed"
    clock.now += 1.0
    received(core, AgentTopic.TELEMETRY, "r1", PAYLOAD)
    core._record(report)
    assert warnings(core)[2:] == [
        "the core shed 1 telemetry message of 1 agent in the last 1.0 s: its ingest is behind"
    ]


def test_a_bigger_fleet_is_held_for_a_second_of_what_its_births_promise() -> None:
    floor = 1000
    core = CoreService(Endpoint("127.0.0.1", 1), SITE, inbox_bytes=floor)
    birth = SAMPLES["birth"][0]
    nodes = birth.nodes
    per_second = (
        sum(
            len(getattr(node, f"{kind}s")) * core.fleet.devices[kind].row_bytes
            for node in nodes
            for kind in core.fleet.devices
        )
        / birth.interval_s
    )
    assert per_second * INBOX_HOLD_S > floor, "the sample birth must outgrow the floor"
    core._size_inbox()
    assert core.link.inbox.max_bytes == floor

    core.fleet.on_birth(birth, 0.0)
    core._size_inbox()
    assert core.link.inbox.max_bytes == int(INBOX_HOLD_S * per_second)

    # an agent that says it samples a thousand times a tick is counted at once a tick
    core.fleet.on_birth(msgspec.structs.replace(birth, interval_s=core.tick_s / 1000), 0.0)
    core._size_inbox()
    assert birth.interval_s == core.tick_s
    assert core.link.inbox.max_bytes == int(INBOX_HOLD_S * per_second)

    core.fleet.on_death(Death(birth.agent, birth.session, clean=True))
    core._size_inbox()
    assert core.link.inbox.max_bytes == floor
