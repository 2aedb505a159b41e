"""A supervised MQTT connection: it connects with a will, reconnects with capped exponential
backoff and jitter, re-subscribes, and tells its owner each time it is connected again."""

import asyncio
import contextlib
import errno
import logging
import random
import re
import socket
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocols.endpoint import Endpoint
from protocols.errors import AidcError
from protocols.inbox import DEFAULT_MAX_BYTES, ReceiveQueue

log = logging.getLogger("aidc.link")


class _LateAcknowledgements(logging.Filter):
    """aiomqtt logs a SUBACK or PUBACK that comes after we stopped waiting for it (a
    reconnect storm, a cancelled call) as an error with a traceback; it is harmless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unexpected message ID")


_MQTT_LOG = logging.getLogger("aidc.mqtt")
_MQTT_LOG.addFilter(_LateAcknowledgements())


def _closed_socket_write(context: dict[str, Any]) -> bool:
    """Whether an event-loop error is aiomqtt asking to watch a socket that paho has closed
    since: it schedules `add_writer` for later, and a connection that drops in between
    (the broker went away) leaves it a dead descriptor. Nothing is lost."""
    error = context.get("exception")
    handle = context.get("handle")
    return (
        isinstance(error, OSError)
        and error.errno == errno.EBADF
        and "add_writer" in repr(getattr(handle, "_callback", None))
    )


def _prepare_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Once per event loop: keep `_closed_socket_write` errors out of the log (passing every
    other error on), and give the loop enough threads to open many connections at once."""
    previous = loop.get_exception_handler()
    if getattr(previous, "aidc_guard", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _closed_socket_write(context):
            log.debug("ignored a write watch on a closed MQTT socket")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.aidc_guard = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
    # aiomqtt opens each connection on the loop's default executor, whose few threads (six on
    # two cores) a fleet's hundreds of links share: a connect waiting out a SYN the broker's
    # full listen queue dropped (a second or more) would hold up every link queued behind it.
    loop.set_default_executor(
        ThreadPoolExecutor(CONNECTS_AT_ONCE, thread_name_prefix="aidc-connect")
    )


MessageHandler = Callable[[aiomqtt.Message], Awaitable[None]]
ConnectHandler = Callable[[int], Awaitable[None]]
WillFactory = Callable[[int], aiomqtt.Will]

CONNECT_TIMEOUT_S = 3.0
"""How long to wait for CONNACK; some 3.1.1 brokers never answer an MQTT 5 CONNECT."""
OPERATION_TIMEOUT_S = 10.0
"""How long to wait for SUBACK or PUBACK once connected."""
SESSION_EXPIRY_S = 3600
"""How long an MQTT 5 broker keeps a persistent session (and its QoS 1 queue) while offline."""
ABORT_WAIT_S = 2.0
"""How long `abort` waits for `run` to notice the dropped connection."""
CONNECTS_AT_ONCE = 64
"""Connections a process may be opening at once (each holds a thread until TCP connects)."""
_PROTOCOL_REFUSED = {1, 132}
"""CONNACK codes for 'unsupported protocol version' in MQTT 3.1.1 and 5."""


def _reraise_swallowed_cancel() -> None:
    """Raise CancelledError if this task was cancelled but the error never reached it:
    Python 3.11's asyncio.wait_for, which aiomqtt awaits acknowledgements with, returns the
    result instead when both arrive together, and the task would then run on forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class LinkDown(AidcError, ConnectionError):
    """The link is not connected to its broker right now."""


@dataclass
class Backoff:
    """Capped exponential backoff with equal jitter: half the delay fixed, half random."""

    initial_s: float = 0.1
    cap_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failed attempts (1 or more)."""
        ceiling = min(self.cap_s, self.initial_s * 2.0 ** min(failures - 1, 32))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


def _reason(error: Exception) -> str:
    """The error's sentence without `[Errno 111]`, `[code:135]` or `(_ssl.c:1006)` noise."""
    text = re.sub(r"^\[[^]]*\] |\s*\(_ssl\.c:\d+\)$", "", str(error))
    return text or type(error).__name__


def _trouble(url: str, error: Exception) -> str:
    """Why a connection attempt failed, as a clause for the log."""
    if _connack_code(error) is not None:
        return f"broker {url} refused the connection ({_reason(error)})"
    if str(error).startswith("[SSL"):
        return f"TLS with broker {url} failed ({_reason(error)})"
    return f"broker {url} is unreachable ({_reason(error)})"


def _connack_code(error: Exception) -> int | None:
    if not isinstance(error, aiomqtt.MqttCodeError):
        return None
    rc = error.rc
    if rc is None or isinstance(rc, int):
        return rc
    return int(rc.value)


def _send_at_once(client: aiomqtt.Client) -> None:
    """Turn off Nagle's algorithm: otherwise a publish that follows another waits for the
    broker's ACK of the first, which a delayed ACK holds back for up to 40 ms."""
    sock = client._client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _seen_disconnection(client: aiomqtt.Client) -> None:
    """Mark an unexpected disconnection as handled: aiomqtt keeps it as the exception of a
    future that nothing awaits once the connection is gone, and asyncio would log 'Future
    exception was never retrieved' for every dropped link."""
    gone = client._disconnected
    if gone.done() and not gone.cancelled():
        gone.exception()


class Link:
    """One client connection to a broker, kept up for as long as `run` runs.

    `will(session)` builds the will for each new connection; `on_connect(session)` runs after
    every (re)connect, once the subscriptions are in place, so the owner can (re)publish its
    birth. `session` counts successful connections from 1.

    What arrives waits in `inbox`, one ReceiveQueue for the link's life: it holds at most
    `inbox_bytes` of telemetry, assignments and state views, sheds the oldest of them beyond
    that and counts them (`shed`, `shed_total`, across reconnects), and keeps everything else.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        client_id: str,
        *,
        subscriptions: Sequence[tuple[str, int]] = (),
        will: WillFactory | None = None,
        on_connect: ConnectHandler | None = None,
        persistent: bool = False,
        keepalive_s: int = 30,
        backoff: Backoff | None = None,
        logger: logging.Logger = log,
        inbox_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.session = 0
        self.mqtt5 = endpoint.mqtt5 is not False
        self.connected = asyncio.Event()
        self._will = will
        self._on_connect = on_connect
        self._persistent = persistent
        self._keepalive_s = keepalive_s
        self._backoff = backoff or Backoff()
        self._log = logger
        self._client: aiomqtt.Client | None = None
        self._aborted = False
        self._gone = asyncio.Event()
        self.inbox = ReceiveQueue(inbox_bytes)

    @property
    def shed(self) -> Counter[str]:
        """Messages shed unread since the link was made, by agent (or `state/{view}`)."""
        return self.inbox.shed

    @property
    def shed_total(self) -> int:
        """Messages shed unread since the link was made."""
        return self.inbox.shed_total

    def _new_client(self) -> aiomqtt.Client:
        endpoint = self.endpoint
        properties = None
        if self.mqtt5 and self._persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            username=endpoint.username,
            password=endpoint.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if self.mqtt5 else aiomqtt.ProtocolVersion.V311,
            will=self._will(self.session + 1) if self._will else None,
            clean_session=None if self.mqtt5 else not self._persistent,
            clean_start=(not self._persistent) if self.mqtt5 else MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            keepalive=self._keepalive_s,
            timeout=CONNECT_TIMEOUT_S,
            tls_context=ssl.create_default_context(cafile=endpoint.ca_file)
            if endpoint.tls
            else None,
            logger=_MQTT_LOG,
        )
        # aiomqtt makes an unbounded queue per client and offers no way to hand it one made
        # already (its queue_type is called with maxsize only); ours is bounded, and outlives
        # the connection, so what was received before a drop is still handed on after it.
        client._queue = self.inbox
        return client

    async def run(self, on_message: MessageHandler) -> None:
        """Stay connected and hand every message to `on_message`, until cancelled."""
        _prepare_loop(asyncio.get_running_loop())
        failures = 0
        down_since: float | None = None
        while True:
            client = self._new_client()
            try:
                async with client:
                    _send_at_once(client)
                    client.timeout = OPERATION_TIMEOUT_S
                    self._client = client
                    self._aborted = False
                    self._gone.clear()
                    self.session += 1
                    for topic_filter, qos in self.subscriptions:
                        await client.subscribe(topic_filter, qos=qos)
                    _reraise_swallowed_cancel()
                    self.connected.set()
                    if down_since is None:
                        self._log.info("%s connected to %s", self.client_id, self.endpoint.url)
                    else:
                        away = time.monotonic() - down_since
                        back = f"reconnected to {self.endpoint.url} after {away:.1f} s"
                        self._log.warning("%s %s", self.client_id, back, extra={"note": back})
                    failures, down_since = 0, None
                    if self._on_connect:
                        await self._on_connect(self.session)
                    async for message in client.messages:
                        await on_message(message)
                        # aiomqtt's iterator makes a task and a wait per message: take what is
                        # waiting already straight from the queue
                        while not self.inbox.empty():
                            await on_message(self.inbox.get_nowait())
            except (aiomqtt.MqttError, LinkDown) as error:
                # LinkDown: a handler's publish found the connection gone before `messages` did.
                # aiomqtt's disconnect on the way out can turn our CancelledError into an
                # MqttError; catching that would keep the link, and its owner, alive.
                _reraise_swallowed_cancel()
                if self._aborted:
                    self._log.debug("%s: connection dropped on purpose", self.client_id)
                elif self.connected.is_set():
                    # the library's reason ("Disconnected during message iteration") says
                    # nothing an operator can act on; the log keeps it for debugging
                    self._log.warning(
                        "%s lost %s (%s); reconnecting",
                        self.client_id,
                        self.endpoint.url,
                        _reason(error),
                        extra={"note": f"broker {self.endpoint.url} unreachable; reconnecting"},
                    )
                    down_since = time.monotonic()
                elif _connack_code(error) in _PROTOCOL_REFUSED and self.mqtt5:
                    self._log.info("%s: broker speaks MQTT 3.1.1 only", self.endpoint.url)
                    self.mqtt5 = False
                    continue
                elif (
                    self.endpoint.mqtt5 is None
                    and self.session == 0
                    and self.mqtt5
                    and not failures
                ):
                    # Some 3.1.1 brokers never answer an MQTT 5 CONNECT (amqtt with a will).
                    self._log.info("%s: no answer to MQTT 5; trying 3.1.1", self.endpoint.url)
                    self.mqtt5 = False
                    continue
                else:
                    if self.endpoint.mqtt5 is None and self.session == 0:
                        # Until one version has worked, try the other one next time.
                        self.mqtt5 = not self.mqtt5
                    failures += 1
                    if down_since is None:
                        down_since = time.monotonic()
                        self._log.warning("%s; retrying", _trouble(self.endpoint.url, error))
                    else:
                        self._log.debug(
                            "attempt %d to reach %s failed: %s",
                            failures,
                            self.endpoint.url,
                            _reason(error),
                        )
            finally:
                self.connected.clear()
                self._client = None
                self._gone.set()
                _seen_disconnection(client)
            await asyncio.sleep(self._backoff.delay(max(failures, 1)))

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish now; LinkDown if the link is not connected, or drops before the broker has
        acknowledged a QoS 1 publish."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise LinkDown(f"not connected to {self.endpoint.url}")
        # aiomqtt waits for the acknowledgement up to its timeout even once the connection is
        # gone; a caller that waits (a message handler, say) would hold up the reconnect.
        publishing = asyncio.ensure_future(client.publish(topic, payload, qos=qos, retain=retain))
        try:
            gone = client._disconnected
            await asyncio.wait({publishing, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            publishing.cancel()
        if not publishing.done() or publishing.cancelled():
            raise LinkDown(f"lost {self.endpoint.url} before it acknowledged a publish")
        if isinstance(error := publishing.exception(), aiomqtt.MqttError):
            raise LinkDown(f"publish to {self.endpoint.url} failed: {_reason(error)}") from None
        if error:
            raise error
        _reraise_swallowed_cancel()

    def send(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 0 without waiting: the packet is queued and written as the socket
        allows. For high-rate telemetry, where a lost message shows as a sequence gap.
        LinkDown if the link is not connected."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise LinkDown(f"not connected to {self.endpoint.url}")
        # aiomqtt's publish waits for paho's on_publish callback even at QoS 0, which costs
        # more than building the message; paho's own publish only queues it.
        info = client._client.publish(topic, payload, qos=0)
        if info.rc != 0:
            raise LinkDown(f"publish to {self.endpoint.url} failed (code {info.rc})")

    async def abort(self) -> None:
        """Drop the connection without a DISCONNECT, as a power loss would, so the broker
        sends the will; what was received but not yet handed on is lost with it. Returns once
        `run` has seen the connection go (at most ABORT_WAIT_S), so the owner can then cancel
        it without a DISCONNECT racing the closed socket."""
        client = self._client
        if client is None:
            return
        self._aborted = True
        # aiomqtt offers no abort; shutting paho's socket down is what a dead host does.
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.inbox.discard()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ABORT_WAIT_S):
                await self._gone.wait()

    async def subscribe(self, topic_filter: str, qos: int = 0) -> None:
        """Add a subscription, kept across reconnects; applied now if connected."""
        self.subscriptions.append((topic_filter, qos))
        client = self._client
        if client is not None and self.connected.is_set():
            await client.subscribe(topic_filter, qos=qos)
