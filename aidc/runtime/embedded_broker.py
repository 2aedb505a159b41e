"""The embedded MQTT 3.1.1 broker (amqtt), served in this process until cancelled."""

import asyncio
import errno
import logging
from collections.abc import Callable, Iterator
from typing import Any

from amqtt.broker import Broker

QUIET_LOGGERS = ("amqtt", "transitions")


def broker_config(bind: str, port: int) -> dict[str, Any]:
    """amqtt configuration: one TCP listener, anonymous clients allowed, no $SYS chatter."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{bind}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


class _Snapshots(dict[str, Any]):
    """amqtt (0.12) walks its table of subscriptions across awaits while other clients
    subscribe: a client connecting then loses its session, unanswered, to 'dictionary changed
    size during iteration' (its SUBSCRIBE times out 10 s later), as can a message being
    broadcast. Walking a copy keeps both."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().__iter__()))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())


async def serve(bind: str, port: int, on_ready: Callable[[], None] | None = None) -> None:
    """Run the broker until cancelled; OSError if the address cannot be bound."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    broker = Broker(broker_config(bind, port))
    broker._subscriptions = _Snapshots()
    try:
        await broker.start()
    except Exception as error:
        cause = error.__cause__ or error.__context__ or error
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            raise OSError(f"{bind}:{port} is already in use; choose another --port") from None
        raise OSError(f"cannot listen on {bind}:{port}: {cause}") from None
    if on_ready:
        on_ready()
    try:
        await asyncio.Event().wait()
    finally:
        await broker.shutdown()
