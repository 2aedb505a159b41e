"""A live site for chaos tests: mosquitto, a core and a fleet as real processes, with the
means to kill and restart each, read node states and send commands."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt

from aidc.runtime.brokers import QUEUED_PER_CLIENT, free_port, spawned_broker
from protocols.codec import REPLY, read_answer
from protocols.commands import OperatorCommand, Query, Reply
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.messages import CoreStatus
from protocols.queries import NodesPage
from protocols.requests import Requester
from protocols.topics import command_topic, reply_prefix
from tests.mqtt import Inbox, running, spawn_aidc, until

STOP_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 30.0
"""A fresh numba cache compiles the core's kernels before it answers."""


def report(test: str, **figures: object) -> None:
    """Append a test's figures to $AIDC_CHAOS_REPORT (JSON lines), for RELIABILITY.md."""
    path = os.environ.get("AIDC_CHAOS_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"test": test, **figures}) + "\n")


class LiveSite:
    """The processes of one site and a client link to it."""

    def __init__(self, site: str, port: int, racks: int, logs: Path, tick_s: float) -> None:
        self.site, self.port, self.racks, self.logs = site, port, racks, logs
        self.tick_s = tick_s
        self.journal = logs / "core.journal"
        self.endpoint = Endpoint("127.0.0.1", port, mqtt5=True)
        self.url = f"mqtt://127.0.0.1:{port}"
        self.processes: dict[str, subprocess.Popen[str]] = {}
        self._asked = 0
        self._broker = contextlib.ExitStack()

    def start_broker(self, queued: int = QUEUED_PER_CLIENT) -> None:
        """Start mosquitto on the site's port (again, after `stop_broker`), holding `queued`
        QoS 1 messages per client."""
        self._broker.enter_context(spawned_broker("mosquitto", self.port, queued=queued))

    def stop_broker(self) -> None:
        """Kill mosquitto: every connection drops, and nothing it held survives."""
        self._broker.close()

    def start_core(self) -> None:
        """Start (or restart) the core at 30x, with its journal."""
        args = ("--tick", str(self.tick_s), "--speed", "30", "--state-db", str(self.journal))
        self.processes["core"] = spawn_aidc(
            "core", "--broker", self.url, "--site", self.site, *args, log=self.logs / "core.log"
        )

    def start_fleet(self, name: str = "fleet", *args: str) -> None:
        """Start a fleet of HGX H100 racks reporting every 0.2 s."""
        racks = ("--racks", str(self.racks), "--rack-kind", "hgx-h100", "--interval", "0.2")
        where = ("--broker", self.url, "--site", self.site)
        self.processes[name] = spawn_aidc(
            "agents", *where, *racks, *args, log=self.logs / f"{name}.log"
        )

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal a component's whole process group and wait for it to end; one that
        outlives STOP_TIMEOUT_S is killed, and AssertionError says so."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"{name} did not stop within {STOP_TIMEOUT_S:g} s") from None

    def assert_alive(self) -> None:
        """Every component still runs."""
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}"

    def log_lines(self) -> int:
        """Lines the components have logged so far."""
        return sum(log.read_text().count("\n") for log in self.logs.glob("*.log"))

    def stop(self) -> None:
        """Stop every component cleanly; none may hang or have logged a traceback."""
        hung = []
        for name in list(self.processes):
            try:
                self.kill(name, signal.SIGINT)
            except AssertionError as error:
                hung.append(str(error))
        self.stop_broker()
        assert not hung, hung
        for log in self.logs.glob("*.log"):
            assert "Traceback" not in log.read_text(), f"{log.name}: {log.read_text()}"

    async def pause(self, seconds: float) -> None:
        """Yield to the event loop for a moment."""
        await asyncio.sleep(seconds)

    async def ask(self, command: OperatorCommand) -> Reply:
        """Send a command on a connection of its own and wait for the core's reply."""
        self._asked += 1
        name = f"asker-{self._asked}"
        link = Link(self.endpoint, name)
        requester = Requester(link, self.site, name, timeout_s=REPLY_TIMEOUT_S)
        async with running(link, _Replies(requester)):
            return await requester.request(command)

    async def core_online(self, connection: int = 1, timeout: float = REPLY_TIMEOUT_S) -> None:
        """Wait until the core's retained status says it is online, on its `connection`th
        connection to the broker or a later one: from then on it hears commands."""
        self._asked += 1
        topic = f"aidc/v1/{self.site}/core/status"
        link = Link(self.endpoint, f"status-{self._asked}", subscriptions=[(topic, 1)])
        async with running(link) as inbox:

            def online() -> bool:
                seen = inbox.decoded(CoreStatus)
                return any(s.online and s.connection >= connection for s in seen)

            await until(online, timeout)

    async def command_json(self, text: str) -> Reply:
        """Send a JSON command as mosquitto_pub would (no reply_to), and wait for its reply on
        the topic the core answers such a command on."""
        self._asked += 1
        topic = f"{reply_prefix(self.site)}{json.loads(text)['id']}"
        link = Link(self.endpoint, f"asker-{self._asked}", subscriptions=[(topic, 1)])
        async with running(link) as inbox:
            await link.publish(command_topic(self.site), text.encode(), qos=1)
            (message,) = await inbox.wait_for(1, timeout=REPLY_TIMEOUT_S)
        return REPLY.decode(bytes(message.payload))

    async def node_states(self, **filters: Any) -> dict[str, str]:
        """Every node's state, by node id, as the core reports it."""
        self._asked += 1
        reply = await self.ask(
            Query(id=f"states-{self._asked}", what="nodes", limit=1000, **filters)
        )
        assert reply.ok, reply.error
        return {row.node: row.state for row in read_answer(NodesPage, reply).nodes}


class _Replies(Inbox):
    """Hands the messages a link receives to its Requester, as replies."""

    def __init__(self, requester: Requester) -> None:
        super().__init__()
        self.requester = requester

    async def put(self, message: aiomqtt.Message) -> None:
        self.requester.take(bytes(message.payload))


@contextlib.contextmanager
def live_site(site: str, racks: int, fleet: bool = True, tick_s: float = 0.2) -> Iterator[LiveSite]:
    """mosquitto, a core with a journal ticking every `tick_s` and (unless told not to) a
    fleet of `racks` HGX H100 racks; logs and the journal in a temporary directory."""
    with tempfile.TemporaryDirectory() as logs:
        live = LiveSite(site, free_port(), racks, Path(logs), tick_s)
        live.start_broker()
        live.start_core()
        if fleet:
            live.start_fleet()
        try:
            yield live
        finally:
            live.stop()
