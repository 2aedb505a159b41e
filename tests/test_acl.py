"""`aidc acl` against a real mosquitto run with its files, a core and agents that log in as
themselves: a viewer cannot drain, an agent cannot speak for another or send commands, an
operator can, and anonymous clients are refused."""

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import aiomqtt
import pytest

from aidc.commands.acl import acl_text, password_hash
from aidc.runtime.brokers import free_port
from protocols.codec import decode_message, read_answer
from protocols.commands import Reply
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.messages import Summary
from protocols.queries import NodeDetail
from tests.mqtt import ROOT, Inbox, running, spawn_aidc, until, wait_listening

SITE = "acl1"


class Secured:
    """The broker's port and each role's credentials."""

    def __init__(self, port: int, secrets: Path) -> None:
        self.port, self.secrets = port, secrets

    def login(self, user: str, role: str | None = None) -> Endpoint:
        password = (self.secrets / (role or user)).read_text().strip()
        return Endpoint("127.0.0.1", self.port, username=user, password=password, mqtt5=True)


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    """mosquitto with `aidc acl`'s files, a core logged in as core, agents as themselves."""
    # mosquitto started as root reads its files as the mosquitto user: not from a 0700 dir
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)
        yield from _secured(Path(tmp) / "acl", free_port())


def _secured(out: Path, port: int) -> Iterator[Secured]:
    made = subprocess.run(
        [sys.executable, "-m", "aidc", "acl", "--site", SITE, "--out", str(out), "--port",
         str(port), "--racks", "2", "--rack-kind", "hgx-h100", "--connection", "rack"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    secrets = out / "secrets"
    for role in ("operator", "viewer", "core", "agent"):
        assert (secrets / role).read_text().strip() not in made.stdout, "no password on stdout"
        assert stat.S_IMODE((secrets / role).stat().st_mode) == 0o600
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(out / "mosquitto.conf")], stderr=subprocess.DEVNULL
    )
    broker_url = f"mqtt://127.0.0.1:{port}"
    common = ("--site", SITE, "--broker")
    processes = []
    try:
        wait_listening(port)
        core_login = ("--password-file", str(secrets / "core"), "--tick", "0.2", "--speed", "30")
        processes.append(spawn_aidc("core", *common, f"mqtt://core@127.0.0.1:{port}", *core_login))
        fleet = ("--racks", "2", "--rack-kind", "hgx-h100", "--interval", "0.2", "--agent-logins",
                 "--connection", "rack")  # fmt: skip
        agent_login = ("--password-file", str(secrets / "agent"))
        processes.append(spawn_aidc("agents", *common, broker_url, *agent_login, *fleet))
        yield Secured(port, secrets)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        for process in processes:
            _, err = process.communicate(timeout=30)
            assert "Traceback" not in err, err
        broker.terminate()
        broker.wait()


async def ask(link: Link, inbox: Inbox, command: Mapping[str, object]) -> Reply | None:
    """Send a JSON command; the core's reply, or None if none comes within 5 s."""
    await link.publish(f"aidc/v1/{SITE}/ctl/cmd", json.dumps(command).encode(), qos=1)
    topic = f"aidc/v1/{SITE}/ctl/reply/{command['id']}"
    with contextlib.suppress(TimeoutError):
        await until(lambda: any(m.topic.value == topic for m in inbox.messages), 5)
        message = next(m for m in inbox.messages if m.topic.value == topic)
        _, reply = decode_message(topic, bytes(message.payload))
        assert isinstance(reply, Reply)
        return reply
    return None


async def test_the_fleet_reports_and_a_viewer_reads_but_cannot_drain(secured: Secured) -> None:
    viewer = Link(secured.login("viewer"), "viewer-1", subscriptions=[(f"aidc/v1/{SITE}/#", 1)])
    async with running(viewer) as seen:
        await until(lambda: (s := seen.latest(Summary)) is not None and s.gpus_healthy == 64, 90)
        drain = {"op": "drain", "id": "viewer-drain", "nodes": ["r001-n01"], "force": True}
        assert await ask(viewer, seen, drain) is None, "no reply: the core never got it"
    operator = Link(
        secured.login("operator"), "operator-1", subscriptions=[(f"aidc/v1/{SITE}/#", 1)]
    )
    async with running(operator) as inbox:
        query = {"op": "query", "id": "after-viewer", "what": "node", "node": "r001-n01"}
        reply = await ask(operator, inbox, query)
        assert reply is not None
        assert read_answer(NodeDetail, reply).state == "ready"
        cordon = {"op": "cordon", "id": "operator-cordon", "nodes": ["r002-n02"]}
        reply = await ask(operator, inbox, cordon)
        assert reply is not None
        assert reply.ok


async def test_an_agent_speaks_only_for_itself(secured: Secured) -> None:
    watch = Link(secured.login("core"), "core-watch", subscriptions=[(f"aidc/v1/{SITE}/#", 1)])
    impostor = Link(secured.login("r001", "agent"), "r001-impostor")
    async with running(watch) as seen, running(impostor):
        for topic in (
            f"aidc/v1/{SITE}/telemetry/r002/r002",
            f"aidc/v1/{SITE}/birth/r002/r002",
            f"aidc/v1/{SITE}/ctl/cmd",
        ):
            await impostor.publish(topic, b"impostor", qos=1)
        await impostor.publish(f"aidc/v1/{SITE}/death/r001/marker", b"impostor", qos=1)
        await impostor.publish(f"aidc/v1/{SITE}/telemetry/r001/r001", b"own", qos=1)
        await until(lambda: any(m.payload == b"own" for m in seen.messages), 10)
        await asyncio.sleep(0.5)
        assert not [m.topic.value for m in seen.messages if m.payload == b"impostor"]


async def test_anonymous_and_wrong_passwords_are_refused(secured: Secured) -> None:
    for username, password in ((None, None), ("operator", "guess")):
        client = aiomqtt.Client("127.0.0.1", secured.port, username=username, password=password)
        with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori[sz]ed|[Bb]ad user name"):
            async with client:
                pass


def test_hashes_are_mosquittos_pbkdf2_sha512() -> None:
    hashed = password_hash("secret", salt=b"0123456789ab")
    kind, iterations, salt, digest = hashed.split("$")[1:]
    assert (kind, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88, "64 bytes of SHA-512, base64"


def test_the_acl_names_each_roles_topics() -> None:
    assert acl_text("dc1") == (
        "# aidc roles for site dc1: written by `aidc acl`\n"
        "user core\n"
        "topic readwrite aidc/v1/dc1/#\n"
        "\n"
        "user operator\n"
        "topic read aidc/v1/dc1/#\n"
        "topic write aidc/v1/dc1/ctl/cmd\n"
        "\n"
        "user viewer\n"
        "topic read aidc/v1/dc1/state/#\n"
        "topic read aidc/v1/dc1/core/#\n"
        "\n"
        "# Every other login is an agent, named by its agent id: it speaks only for itself.\n"
        "pattern write aidc/v1/dc1/birth/+/%u\n"
        "pattern write aidc/v1/dc1/death/+/%u\n"
        "pattern write aidc/v1/dc1/telemetry/+/%u\n"
        "pattern read aidc/v1/dc1/assign/+/%u\n"
        "pattern read aidc/v1/dc1/agentcmd/+/%u\n"
        "pattern read aidc/v1/dc1/core/status\n"
        "pattern read aidc/v1/dc1/core/clock\n"
    )
