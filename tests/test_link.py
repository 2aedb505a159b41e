"""The supervised link against real brokers: every message type travels, the will fires,
and the link survives the broker going away and coming back."""

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import aiomqtt
import pytest

from aidc.runtime.brokers import free_port, spawned_broker
from protocols.codec import DEATH, decode_message, encode, encode_json
from protocols.endpoint import Endpoint
from protocols.link import Backoff, Link, LinkDown
from protocols.messages import Death
from protocols.topics import AgentTopic, agent_topic
from tests.mqtt import Inbox, running, until
from tests.samples import SAMPLES, SITE, sample_topic

ROOT = Path(__file__).resolve().parent.parent
FAST = Backoff(initial_s=0.05, cap_s=0.5)


async def test_every_message_type_travels_in_both_encodings(broker: Endpoint) -> None:
    sent = [
        (sample_topic(kind), encoder(message), message)
        for kind, messages in SAMPLES.items()
        for message in messages
        for encoder in (encode, encode_json)
    ]
    subscriber = Link(broker, "test-sub", subscriptions=[(f"aidc/v1/{SITE}/#", 1)])
    publisher = Link(broker, "test-pub")
    async with running(subscriber) as inbox, running(publisher):
        for topic, payload, _ in sent:
            await publisher.publish(topic, payload, qos=1)
        received = await inbox.wait_for(len(sent))
    got = [decode_message(m.topic.value, bytes(m.payload)) for m in received]
    assert [(topic.kind, message) for topic, message in got] == [
        (decode_message(topic, payload)[0].kind, message) for topic, payload, message in sent
    ]


async def test_mqtt_version_is_negotiated(broker: Endpoint) -> None:
    unknown = Endpoint(broker.host, broker.port)
    link = Link(unknown, "test-version")
    async with running(link):
        assert link.mqtt5 is (broker.mqtt5 is True)


async def test_publish_while_down_raises_link_down() -> None:
    link = Link(Endpoint("127.0.0.1", free_port()), "test-down")
    with pytest.raises(LinkDown, match="not connected"):
        await link.publish("aidc/v1/dc1/core/status", b"x")


@pytest.mark.broker
@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
async def test_reconnects_resubscribes_and_rebirths_after_broker_restart(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aidc.link")
    port = free_port()
    sessions: list[int] = []
    topic = agent_topic(AgentTopic.ASSIGN, SITE, "r1", "r1")

    async def on_connect(session: int) -> None:
        sessions.append(session)

    endpoint = Endpoint("127.0.0.1", port)
    agent = Link(
        endpoint, "agent-r1", subscriptions=[(topic, 1)], on_connect=on_connect, backoff=FAST
    )
    inbox = Inbox()
    task = asyncio.create_task(agent.run(inbox.put))
    try:
        with spawned_broker(kind, port):
            await until(agent.connected.is_set)
            assert sessions == [1]
        await until(lambda: not agent.connected.is_set())
        with spawned_broker(kind, port):
            await until(agent.connected.is_set)
            assert sessions == [1, 2]
            async with running(Link(endpoint, "core-1")) as _:
                pass
            core = Link(endpoint, "core-2")
            async with running(core):
                await core.publish(topic, b"after-restart", qos=1)
                (message,) = await inbox.wait_for(1)
            assert message.payload == b"after-restart"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        assert warnings[0].startswith(f"agent-r1 lost mqtt://127.0.0.1:{port} (")
        assert warnings[1].startswith(f"agent-r1 reconnected to mqtt://127.0.0.1:{port} after")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.broker
async def test_unreachable_broker_is_one_warning_then_quiet_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aidc.link")
    port = free_port()
    link = Link(Endpoint("127.0.0.1", port, mqtt5=False), "patient", backoff=FAST)
    task = asyncio.create_task(link.run(Inbox().put))
    try:
        await asyncio.sleep(1.0)
        assert not task.done()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f"broker mqtt://127.0.0.1:{port} is unreachable (Connection refused); retrying"
        ]
        assert sum("failed" in r.getMessage() for r in caplog.records) >= 3
        with spawned_broker("embedded", port):
            await until(link.connected.is_set)
        assert any("reconnected to" in r.getMessage() for r in caplog.records)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


WILL_OWNER = textwrap.dedent(
    """
    import asyncio, sys
    import aiomqtt
    from protocols.codec import encode
    from protocols.endpoint import Endpoint
    from protocols.link import Link
    from protocols.messages import Death

    async def main(port: int, topic: str) -> None:
        async def connected(session: int) -> None:
            print("connected", session, flush=True)

        link = Link(
            Endpoint("127.0.0.1", port),
            "owner-r1",
            will=lambda session: aiomqtt.Will(topic, encode(Death("r1", session)), qos=1),
            on_connect=connected,
        )
        async def ignore(message: aiomqtt.Message) -> None:
            pass
        await link.run(ignore)

    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
    """
)


async def test_will_announces_the_death_of_a_killed_owner(broker: Endpoint) -> None:
    topic = agent_topic(AgentTopic.DEATH, SITE, "r1", "r1")
    watcher = Link(broker, "death-watcher", subscriptions=[(topic, 1)])
    async with running(watcher) as inbox:
        owner = subprocess.Popen(
            [sys.executable, "-c", WILL_OWNER, str(broker.port), topic],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert owner.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(owner.stdout.readline), 15)
            assert line.split() == ["connected", "1"]
            os.kill(owner.pid, signal.SIGKILL)
            (message,) = await inbox.wait_for(1)
        finally:
            owner.kill()
            owner.wait()
    assert DEATH.decode(bytes(message.payload)) == Death("r1", 1)


async def test_clean_shutdown_does_not_fire_the_will(broker: Endpoint) -> None:
    topic = agent_topic(AgentTopic.DEATH, SITE, "r2", "r2")
    watcher = Link(broker, "quiet-watcher", subscriptions=[(topic, 1)])
    owner = Link(
        broker, "owner-r2", will=lambda s: aiomqtt.Will(topic, encode(Death("r2", s)), qos=1)
    )
    async with running(watcher) as inbox:
        async with running(owner):
            pass
        with pytest.raises(TimeoutError):
            await inbox.wait_for(1, timeout=1.0)


async def test_abort_fires_the_will_and_leaves_the_event_loop_clean(broker: Endpoint) -> None:
    topic = agent_topic(AgentTopic.DEATH, SITE, "r3", "r3")
    watcher = Link(broker, "abort-watcher", subscriptions=[(topic, 1)])
    owner = Link(
        broker, "owner-r3", will=lambda s: aiomqtt.Will(topic, encode(Death("r3", s)), qos=1)
    )
    loop_errors: list[str] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, context: loop_errors.append(context["message"])
    )
    async with running(watcher) as inbox:
        async with running(owner):
            owner.send(f"aidc/v1/{SITE}/noise", b"x")  # a write queued as the socket goes
            await owner.abort()
            assert not owner.connected.is_set()
        (message,) = await inbox.wait_for(1)
        await asyncio.sleep(0.2)  # let any callback left behind by the closed socket run
    assert DEATH.decode(bytes(message.payload)) == Death("r3", 1)
    assert loop_errors == []


async def test_a_cancellation_swallowed_below_a_publish_still_stops_the_task(
    broker: Endpoint,
) -> None:
    """Python 3.11's wait_for (which aiomqtt awaits acknowledgements with) can return instead
    of raising a cancellation; the next publish must raise it, or the task runs on for ever."""
    link = Link(broker, "swallowed")
    async with running(link):

        async def owner() -> None:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)  # the cancellation, swallowed as wait_for can
            await link.publish(f"aidc/v1/{SITE}/noise", b"x", qos=1)
            raise AssertionError("published on after being cancelled")

        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(owner())


@pytest.mark.broker
async def test_a_publish_the_broker_never_acknowledges_ends_when_the_connection_drops(
    tmp_path: Path,
) -> None:
    """A QoS 1 publish in flight when the broker dies raises LinkDown as the connection drops,
    not after aiomqtt's timeout: a message handler awaiting it would hold up the reconnect."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([mosquitto, "-c", str(config)], stderr=subprocess.DEVNULL)
    try:
        link = Link(Endpoint("127.0.0.1", port), "unacknowledged")
        async with running(link):
            broker.send_signal(signal.SIGSTOP)  # it will never acknowledge
            publishing = asyncio.create_task(link.publish(f"aidc/v1/{SITE}/x", b"x", qos=1))
            await asyncio.sleep(0.3)
            assert not publishing.done()
            broker.kill()
            started = asyncio.get_running_loop().time()
            with pytest.raises(LinkDown, match="before it acknowledged"):
                await publishing
            assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        broker.kill()
        broker.wait()


async def test_a_handler_that_finds_the_link_down_gets_a_new_connection(broker: Endpoint) -> None:
    """A publish in a handler can learn of a dropped connection before the link does: the
    link reconnects rather than ending, and its owner with it."""
    sessions: list[int] = []

    async def on_connect(session: int) -> None:
        sessions.append(session)
        if session == 1:
            raise LinkDown("lost the broker before it acknowledged a publish")

    link = Link(broker, "handler-down", on_connect=on_connect)
    async with running(link):
        await until(lambda: len(sessions) >= 2, 10)
    assert sessions[:2] == [1, 2]
