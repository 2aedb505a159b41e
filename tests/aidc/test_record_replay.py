"""`aidc record` and `aidc replay` against real mosquitto brokers: a recorded site replays as the
same messages in the same order, at the recorded pace scaled by --speed; a damaged or killed
recording replays up to the damage; a dashboard attached to a replay shows it as one."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest

from aidc.runtime.brokers import free_port, spawned_broker
from protocols.codec import COMMAND, CORE_STATUS, encode, encode_json
from protocols.commands import Cordon, Query
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.messages import CoreStatus, Summary
from protocols.recording import (
    RecordedMessage,
    RecordingDamaged,
    RecordingHeader,
    RecordingReader,
    RecordingWriter,
)
from protocols.topics import command_topic, core_status_topic
from tests.mqtt import ROOT, Inbox, interrupt, running, spawn_aidc, until
from tests.tui.pilots import SIZE, command_mode, last_said
from tests.tui.pilots import until as until_shown
from tui.app import AidcApp
from tui.screens.nodes import NodesView
from tui.widgets.header import OverviewHeader

SITE = "rec1"
GPUS = 32
RECORD_S = 3.0


def recorded(path: Path) -> list[RecordedMessage]:
    """The whole messages of a recording so far (a frame being written is left out)."""
    try:
        with path.open("rb") as file:
            reader = RecordingReader(file)
            out: list[RecordedMessage] = []
            with contextlib.suppress(RecordingDamaged):
                out.extend(reader)
            return out
    except (OSError, ValueError):
        return []


def url(endpoint: Endpoint) -> str:
    return f"mqtt://{endpoint.host}:{endpoint.port}"


@contextlib.contextmanager
def recorder(broker: Endpoint, site: str, path: Path) -> Iterator["subprocess.Popen[str]"]:
    """`aidc record` of a site to `path`, interrupted when the block ends if still running."""
    process = spawn_aidc("record", "--broker", url(broker), "--site", site, "-o", str(path))
    try:
        yield process
    finally:
        if process.poll() is None:
            interrupt(process)


def stop(process: "subprocess.Popen[str]") -> str:
    """Ctrl-C a command and return what it printed."""
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 130, err
    assert "Traceback" not in err, err
    return out


async def replay_command(*args: str) -> tuple[int, str, str]:
    """Run `aidc replay ARGS` to its end without blocking the event loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aidc",
        "replay",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def listening(endpoint: Endpoint, site: str) -> AsyncIterator[Inbox]:
    """Every message of a site on a broker, from now on."""
    link = Link(endpoint, f"test-listener-{os.getpid()}", subscriptions=[(f"aidc/v1/{site}/#", 1)])
    async with running(link) as inbox:
        yield inbox


def as_seen(message: aiomqtt.Message) -> tuple[str, Any]:
    """A received message as (topic, payload), a core status decoded without its replay label."""
    topic, payload = message.topic.value, bytes(message.payload)
    return topic, unlabelled(topic, payload)


def unlabelled(topic: str, payload: bytes) -> Any:
    if topic.endswith("/core/status"):
        return msgspec.structs.replace(CORE_STATUS.decode(payload), replay="")
    return payload


def replayed(records: list[RecordedMessage]) -> list[tuple[str, Any]]:
    """What a replay of `records` publishes: the first status, every message, the last status
    offline."""
    seen = [(r.topic, unlabelled(r.topic, r.payload)) for r in records]
    statuses = [payload for topic, payload in seen if topic.endswith("/core/status")]
    status_topic = core_status_topic(SITE)
    last = msgspec.structs.replace(statuses[-1], online=False)
    return [(status_topic, statuses[0]), *seen, (status_topic, last)]


async def _record_a_cordon(endpoint: Endpoint, path: Path) -> str:
    """Record the site for a few seconds, once it serves, with an operator's cordon in it;
    what the recorder printed."""
    watcher = Link(endpoint, "rec-tests-ready", subscriptions=[(f"aidc/v1/{SITE}/state/+", 0)])
    async with running(watcher) as inbox:

        def serving() -> bool:
            summary = inbox.latest(Summary)
            return summary is not None and summary.gpus_healthy == GPUS

        await until(serving, timeout=120)
        with recorder(endpoint, SITE, path) as recording:
            await until(lambda: recorded(path))
            cordon = Cordon(id="rec-cordon-1", nodes=["r001-n02"], reason="replay test")
            await watcher.publish(command_topic(SITE), encode_json(cordon), qos=1)
            await asyncio.sleep(RECORD_S)
            return stop(recording)


@pytest.fixture(scope="module")
def site_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few seconds of a live site (a core and one HGX H100 rack) with a cordon in them."""
    tmp = tmp_path_factory.mktemp("recorded-site")
    path = tmp / "site.rec"
    with spawned_broker("mosquitto") as broker:
        common = ("--broker", url(broker), "--site", SITE)
        core = spawn_aidc("core", *common, "--tick", "0.2", "--speed", "30", log=tmp / "core.log")
        fleet = ("--racks", "1", "--rack-kind", "hgx-h100", "--interval", "0.2")
        agents = spawn_aidc("agents", *common, *fleet, log=tmp / "agents.log")
        try:
            said = asyncio.run(_record_a_cordon(broker, path))
        finally:
            interrupt(agents, core)
    messages = recorded(path)
    assert f"aidc record: {len(messages):,} messages" in said
    return path


@pytest.fixture
def broker() -> Iterator[Endpoint]:
    """A fresh mosquitto for a replay."""
    with spawned_broker("mosquitto") as endpoint:
        yield endpoint


def test_a_recording_holds_every_kind_of_message_of_the_site(site_recording: Path) -> None:
    messages = recorded(site_recording)
    kinds = {m.topic.split("/")[3] for m in messages}
    assert {"core", "state", "telemetry", "assign", "ctl"} <= kinds
    status = messages[0]
    assert status.topic == core_status_topic(SITE)
    assert (status.retain, status.qos) == (True, 1)
    assert CORE_STATUS.decode(status.payload).online
    assert any(m.topic == command_topic(SITE) and b"rec-cordon-1" in m.payload for m in messages)
    assert [m.at for m in messages] == sorted(m.at for m in messages)
    assert RECORD_S - 0.5 < messages[-1].at - messages[0].at < RECORD_S + 3


async def test_a_replay_publishes_the_same_messages_in_the_same_order(
    site_recording: Path, broker: Endpoint
) -> None:
    records = recorded(site_recording)
    expected = replayed(records)
    async with listening(broker, SITE) as inbox:
        code, out, err = await replay_command(
            str(site_recording), "--broker", url(broker), "--speed", "0"
        )
        assert code == 0, err
        assert f"{len(records):,} of {len(records):,} messages replayed" in out
        await inbox.wait_for(len(expected))
        await asyncio.sleep(0.2)
    assert [as_seen(m) for m in inbox.messages] == expected
    statuses = [m for m in inbox.messages if m.topic.value == core_status_topic(SITE)]
    labels = {CORE_STATUS.decode(bytes(m.payload)).replay for m in statuses}
    assert labels == {"site.rec as fast as possible"}


async def test_a_truncated_recording_replays_up_to_the_damage_and_says_where(
    site_recording: Path, broker: Endpoint, tmp_path: Path
) -> None:
    records = recorded(site_recording)
    half = len(records) // 2
    cut = tmp_path / "cut.rec"
    with cut.open("wb") as file:
        writer = RecordingWriter(file, RecordingHeader(SITE, 0.0))
        for record in records[: half + 1]:
            damage_at = writer.bytes
            writer.write(record)
        file.truncate(writer.bytes - 10)
    body = writer.bytes - damage_at - 8
    reason = f"is cut short: {body - 10:,} of its {body:,} bytes are there"
    async with listening(broker, SITE) as inbox:
        code, out, err = await replay_command(str(cut), "--broker", url(broker), "--speed", "0")
        assert code == 0, err
        await inbox.wait_for(half + 2)
        await asyncio.sleep(0.2)
    lines = out.splitlines()
    where = f"message {half + 1:,} at byte {damage_at:,}"
    assert lines[1] == f"aidc replay: {cut}: {where} {reason}; replaying what comes before"
    assert lines[-2] == f"aidc replay: {half:,} of {half:,} messages replayed in 0:00"
    where = f"message {half + 1:,} (byte {damage_at:,})"
    assert lines[-1] == f"aidc replay: stopped at {where} of {cut}, which {reason}"
    assert [as_seen(m) for m in inbox.messages] == replayed(records[:half])


class Stamped(Inbox):
    """An inbox that notes when each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[float] = []

    async def put(self, message: aiomqtt.Message) -> None:
        self.arrived.append(time.monotonic())
        await super().put(message)


@pytest.mark.broker
async def test_replay_keeps_the_recorded_pace_scaled_by_speed(tmp_path: Path) -> None:
    path = tmp_path / "paced.rec"
    gaps = [0.05, 0.3, 0.05, 0.6, 0.1, 0.4, 0.05, 0.2]
    site, speed = "paced", 2.0
    events = f"aidc/v1/{site}/core/events"
    with spawned_broker("mosquitto") as source, spawned_broker("mosquitto") as target:
        link = Link(source, "paced-publisher")
        async with running(link):
            status = encode(CoreStatus(True, 4))
            await link.publish(core_status_topic(site), status, qos=1, retain=True)
            await link.publish(f"aidc/v1/{site}/state/summary", b"kept", retain=True)
            with recorder(source, site, path) as recording:
                await until(lambda: len(recorded(path)) == 2)
                for i, gap in enumerate([0.0, *gaps]):
                    await asyncio.sleep(gap)
                    await link.publish(events, b"%d" % i, qos=i % 2)
                await until(lambda: len(recorded(path)) == len(gaps) + 3)
                stop(recording)
        records = recorded(path)
        assert [(r.retain, r.qos) for r in records[:2]] == [(True, 1), (True, 0)]
        assert [r.qos for r in records[2:]] == [i % 2 for i in range(len(gaps) + 1)]
        recorded_at = [r.at for r in records[2:]]
        for i, gap in enumerate(gaps):
            assert abs(recorded_at[i + 1] - recorded_at[i] - gap) < 0.05, (i, recorded_at)

        inbox = Stamped()
        listener = Link(target, "paced-listener", subscriptions=[(f"aidc/v1/{site}/#", 1)])
        async with running(listener, inbox):
            args = (str(path), "--broker", url(target), "--speed", f"{speed:g}")
            code, _, err = await replay_command(*args)
            assert code == 0, err
            await inbox.wait_for(len(records) + 2)
        arrived = [
            (at, bytes(m.payload))
            for at, m in zip(inbox.arrived, inbox.messages, strict=True)
            if m.topic.value == events
        ]
        assert [payload for _, payload in arrived] == [b"%d" % i for i in range(len(gaps) + 1)]
        for i, gap in enumerate(gaps):
            assert abs(arrived[i + 1][0] - arrived[i][0] - gap / speed) < 0.05, (i, arrived)

        late = Link(target, "late-subscriber", subscriptions=[(f"aidc/v1/{site}/#", 1)])
        async with running(late) as kept:
            await kept.wait_for(2)
        retained = {m.topic.value: bytes(m.payload) for m in kept.messages}
        assert retained[f"aidc/v1/{site}/state/summary"] == b"kept"
        final = CORE_STATUS.decode(retained[core_status_topic(site)])
        assert (final.online, final.session, final.replay) == (False, 4, "paced.rec at 2x")


@pytest.mark.broker
async def test_a_recorder_killed_with_sigkill_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.rec"
    site = "killed"
    with spawned_broker("mosquitto") as source:
        link = Link(source, "busy-publisher")
        async with running(link):
            status = encode(CoreStatus(True, 1))
            await link.publish(core_status_topic(site), status, qos=1, retain=True)
            with recorder(source, site, path) as recording:
                await until(lambda: recorded(path))
                topic = f"aidc/v1/{site}/telemetry/r001/r001-n01"
                sent: list[float] = []
                while len(sent) < 3000:
                    link.send(topic, b"%d " % len(sent) + b"x" * 1000)
                    sent.append(time.monotonic())
                    if len(sent) == 2000:
                        os.kill(recording.pid, signal.SIGKILL)
                        killed_at = time.monotonic()
                    await asyncio.sleep(0.0005)
                recording.wait(timeout=5)
    with path.open("rb") as file:
        assert RecordingReader(file).header.site == site
    numbers = [int(m.payload.split(b" ")[0]) for m in recorded(path)[1:]]
    assert numbers == list(range(len(numbers)))
    flushed_by_then = sum(at < killed_at - 0.5 for at in sent)
    assert flushed_by_then <= len(numbers) < 2000


async def test_a_site_with_a_live_core_is_refused_and_one_replaying_is_not(
    broker: Endpoint, tmp_path: Path
) -> None:
    path = tmp_path / "tiny.rec"
    with path.open("wb") as file:
        writer = RecordingWriter(file, RecordingHeader(SITE, 0.0))
        writer.write(RecordedMessage(0.0, f"aidc/v1/{SITE}/core/events", b"one"))
    link = Link(broker, "core-impostor")
    async with running(link):
        live = encode(CoreStatus(True, 1))
        await link.publish(core_status_topic(SITE), live, qos=1, retain=True)
        code, out, err = await replay_command(str(path), "--broker", url(broker))
        assert code == 2
        assert err.splitlines()[-1] == (
            f"aidc: site {SITE} on {url(broker)} has a live core (its retained status says "
            "online); replay to a broker of its own or under another --site"
        )
        assert "replayed" not in out
        code, out, err = await replay_command(
            str(path), "--broker", url(broker), "--site", "beside"
        )
        assert code == 0, err
        replaying = encode(CoreStatus(True, 1, replay="other.rec at 1x"))
        await link.publish(core_status_topic(SITE), replaying, qos=1, retain=True)
        code, out, err = await replay_command(str(path), "--broker", url(broker))
        assert code == 0, err
        assert "aidc replay: 1 of 1 messages replayed" in out


def aidc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aidc", *args], capture_output=True, text=True, cwd=ROOT, timeout=30
    )


NOWHERE = "mqtt://127.0.0.1:1"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot read {path}: No such file or directory"),
        (b"topic,payload\n", "{path}: not an aidc recording (it does not begin with AIDCREC)"),
        (b"AIDCREC\x01\x10\x00", "{path}: the header is cut short: the file ends 2 bytes into it"),
    ],
    ids=["missing", "not-a-recording", "cut-in-the-header"],
)
def test_a_file_that_cannot_be_replayed_is_one_sentence(
    tmp_path: Path, content: bytes | None, error: str
) -> None:
    path = tmp_path / "incident.rec"
    if content is not None:
        path.write_bytes(content)
    result = aidc("replay", str(path), "--broker", NOWHERE)
    assert result.returncode == 2
    assert result.stderr == f"aidc: {error.format(path=path)}\n"


def test_record_refuses_an_existing_file_and_a_broker_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "kept.rec"
    path.write_bytes(b"an earlier incident")
    result = aidc("record", "--broker", NOWHERE, "-o", str(path))
    assert (result.returncode, result.stderr) == (
        2,
        f"aidc: {path} exists already; record to a new file\n",
    )
    assert path.read_bytes() == b"an earlier incident"
    result = aidc("record", "--broker", "embedded", "-o", str(tmp_path / "new.rec"))
    assert result.returncode == 2
    assert result.stderr.startswith(
        "aidc: aidc record attaches to a running broker, not 'embedded'"
    )


def test_a_broker_that_is_down_is_one_sentence_and_the_replay_waits_for_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tiny.rec"
    with path.open("wb") as file:
        RecordingWriter(file, RecordingHeader(SITE, 0.0))
    broker = f"mqtt://127.0.0.1:{free_port()}"
    replay = spawn_aidc("replay", str(path), "--broker", broker)
    time.sleep(3)
    os.killpg(replay.pid, signal.SIGINT)
    out, err = replay.communicate(timeout=15)
    assert replay.returncode == 130
    said = [line for line in err.splitlines() if line.startswith("aidc:")]
    assert said == [f"aidc: broker {broker} is unreachable (Connection refused); retrying"], err
    assert "replayed" not in out


async def test_a_dashboard_shows_a_replay_as_it_happened_with_commands_disabled(
    site_recording: Path, broker: Endpoint
) -> None:
    app = AidcApp(broker, SITE)
    async with listening(broker, SITE) as inbox, app.run_test(size=SIZE) as pilot:
        fleet = app.bridge.picture
        await until_shown(pilot, lambda: fleet.link.up)
        args = (str(site_recording), "--broker", url(broker), "--speed", "1")
        replay = asyncio.create_task(replay_command(*args))
        await until_shown(pilot, lambda: fleet.replay and fleet.summary and fleet.pools)
        assert app.read_only
        header = app.screen.query_one(OverviewHeader).text.plain
        assert "REPLAY  site.rec at 1x" in header
        assert "READ-ONLY" not in header
        await until_shown(pilot, lambda: any(e.command == "rec-cordon-1" for e in fleet.events))

        await app.action_view("nodes")
        nodes = app.views["nodes"]
        assert isinstance(nodes, NodesView)
        await until_shown(pilot, lambda: nodes.problem)
        assert nodes.problem.startswith("cannot read the nodes: a replay (site.rec at 1x) has no")
        shown = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not shown & nodes.MUTATIONS
        await command_mode(pilot, "drain r001-n01")
        assert last_said(app) == (
            "Replay: not allowed to drain node r001-n01 (grace 300 s).",
            "error",
        )
        code, _, err = await replay
        assert code == 0, err
        await until_shown(pilot, lambda: fleet.core is not None and not fleet.core.online)
        assert "REPLAY" in app.screen.query_one(OverviewHeader).text.plain
    commands = [
        COMMAND.decode(bytes(m.payload))
        for m in inbox.messages
        if m.topic.value == command_topic(SITE)
    ]
    ours = [command for command in commands if command.id.startswith(app.bridge.token)]
    assert all(isinstance(command, Query) for command in ours), ours
