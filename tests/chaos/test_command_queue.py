"""An operator's command reaches the core however full the fleet's traffic keeps the broker's
queue for it. A mosquitto with its defaults holds at most 1000 QoS 1 messages per connection
(max_queued_messages) and drops the rest, as it did to commands behind the births of a
thousand racks after a broker restart."""

import asyncio
import os
import signal

from protocols.commands import Query
from protocols.link import Link
from protocols.topics import AgentTopic, agent_topic
from tests.chaos.site import live_site
from tests.mqtt import running

MOSQUITTO_DEFAULT_QUEUE = 1000
"""mosquitto.conf(5), max_queued_messages: what an external broker left as installed holds."""
QUEUED = 1500
"""QoS 1 births published while the core reads nothing: more than that broker queues."""


async def test_a_command_behind_a_flood_of_births_is_answered() -> None:
    with live_site("flood1", racks=0, fleet=False, tick_s=1.0) as site:
        await site.core_online()
        site.stop_broker()
        site.start_broker(queued=MOSQUITTO_DEFAULT_QUEUE)
        await site.core_online(connection=2)
        core = site.processes["core"]
        flood = Link(site.endpoint, "flood")
        async with running(flood):
            os.kill(core.pid, signal.SIGSTOP)  # a core busy elsewhere: it reads nothing
            try:
                for n in range(QUEUED):
                    topic = agent_topic(AgentTopic.BIRTH, "flood1", "r001", f"a{n}")
                    await flood.publish(topic, b"not a birth", qos=1)
                asked = asyncio.create_task(site.ask(Query(id="behind", what="pools")))
                await asyncio.sleep(1.0)  # the command is at the broker before the core reads
            finally:
                os.kill(core.pid, signal.SIGCONT)
            reply = await asked
        assert reply.ok, reply.error
        assert reply.id == "behind"
