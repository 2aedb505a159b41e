"""The embedded MQTT 3.1.1 broker (amqtt), served in this process until cancelled."""

import asyncio
import errno
import logging
from collections.abc import Callable
from typing import Any

from amqtt.broker import Broker

QUIET_LOGGERS = ("amqtt", "transitions")


def broker_config(bind: str, port: int) -> dict[str, Any]:
    """amqtt configuration: one TCP listener, anonymous clients allowed, no $SYS chatter."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{bind}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve(bind: str, port: int, on_ready: Callable[[], None] | None = None) -> None:
    """Run the broker until cancelled; OSError if the address cannot be bound."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    broker = Broker(broker_config(bind, port))
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
