"""One ingest process of the scale-out design (docs/scale-out.md), for
tests/test_shared_ingest.py: it hears every birth, takes its share of the site's telemetry on
an MQTT shared subscription, and stores it in a `FleetState` as the core does.

`python -m tests.ingest_share PORT SITE GROUP NAME` prints `ready` once subscribed, then,
when its standard input closes, one JSON line: the agents it heard born, the (agent, seq) of
every telemetry message it stored, the reasons of any it rejected, and the nodes whose GPUs' samples
it stored.
"""

import asyncio
import contextlib
import json
import sys
import time

import aiomqtt
import numpy as np

from protocols.codec import decode_message
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.messages import Birth, Death, Telemetry
from protocols.topics import AgentTopic, agent_filter
from sim.fleet_state import FleetState


def shared(group: str, topic_filter: str) -> str:
    """A topic filter as a member of a shared subscription group (MQTT 5, section 4.8.2)."""
    return f"$share/{group}/{topic_filter}"


async def ingest(endpoint: Endpoint, site: str, group: str, name: str) -> dict[str, object]:
    state = FleetState()
    stored: list[tuple[str, int]] = []
    rejected: list[str] = []

    async def on_message(message: aiomqtt.Message) -> None:
        _, value = decode_message(message.topic.value, bytes(message.payload))
        now = time.time()
        if isinstance(value, Birth):
            state.on_birth(value, now)
        elif isinstance(value, Death):
            state.on_death(value)
        elif isinstance(value, Telemetry):
            reason = state.on_telemetry(value, now)
            if reason is not None:
                rejected.append(reason)
            elif value.agents:
                stored.extend(zip(value.agents, value.seqs, strict=True))
            else:
                stored.append((value.agent, value.seq))

    link = Link(
        endpoint,
        f"ingest-{site}-{name}",
        subscriptions=[
            (agent_filter(AgentTopic.BIRTH, site), 1),
            (agent_filter(AgentTopic.DEATH, site), 1),
            (shared(group, agent_filter(AgentTopic.TELEMETRY, site)), 0),
        ],
    )
    running = asyncio.create_task(link.run(on_message))
    await link.connected.wait()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    gpus = state.devices["gpu"].table
    sampled = [state.nodes.ids[n] for n in np.unique(gpus["node"][gpus["seen"] > 0])]
    return {
        "born": sorted(state.agents),
        "stored": stored,
        "rejected": rejected,
        "nodes_sampled": sampled,
    }


def main() -> None:
    port, site, group, name = sys.argv[1:]
    report = asyncio.run(ingest(Endpoint("127.0.0.1", int(port)), site, group, name))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
