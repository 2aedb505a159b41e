"""What receiving a telemetry message costs a connection: a real mosquitto, a publisher process
that floods it, and one `protocols.link.Link` that takes every message and does nothing more.

Run from the repo root: `.venv/bin/python bench/receive.py [--messages 30000] [--bytes 19000]`.

The publisher (paho, in its own process) sends `--messages` QoS 0 messages of `--bytes` each
(an NVL72 rack's telemetry is about 19 KB) on 3,000 agents' telemetry topics; the link's
process CPU time over the flood, divided by the messages, is the receive path's cost: paho's
reader, aiomqtt, the bounded queue and the hand-over. mosquitto's CPU time over the flood,
divided the same way, is what the broker spends taking a message in and handing it on. It
prints the medians of `--repeats` floods, and the messages a second one core could take at
each cost.
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidc.runtime.brokers import spawned_broker  # noqa: E402
from bench.procs import broker_pid, cpu_seconds  # noqa: E402
from protocols.endpoint import Endpoint  # noqa: E402
from protocols.link import Link  # noqa: E402
from protocols.topics import AgentTopic, agent_topic  # noqa: E402

SITE = "bench"
AGENTS = 3000
PUBLISHER = """
import sys, time
import paho.mqtt.client as mqtt
port, count, size, topics = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.connect("127.0.0.1", port)
client.loop_start()
payload = bytes(size)
for n in range(count):
    client.publish(topics[n % len(topics)], payload, qos=0)
    if n % 200 == 0:
        time.sleep(0.001)  # let paho's network thread keep up
client.disconnect()
client.loop_stop()
"""


async def flood(endpoint: Endpoint, count: int, size: int) -> tuple[float, float, float, int]:
    """The link's and the broker's CPU microseconds a message, wall seconds, and messages
    shed, for one flood."""
    received = 0
    done = asyncio.Event()

    async def on_message(_: object) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    link = Link(
        endpoint,
        "bench-receive",
        subscriptions=[(f"aidc/v1/{SITE}/telemetry/+/+", 0)],
        inbox_bytes=count * (size + 8192),  # nothing shed: the cost of taking every message
    )
    running = asyncio.create_task(link.run(on_message))
    await link.connected.wait()
    topics = [
        agent_topic(AgentTopic.TELEMETRY, SITE, f"r{n:04}", f"r{n:04}") for n in range(AGENTS)
    ]
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISHER, str(endpoint.port), str(count), str(size), *topics
    )
    broker = broker_pid()
    cpu, broker_cpu, wall = time.process_time(), cpu_seconds(broker), time.monotonic()
    try:
        await asyncio.wait_for(done.wait(), 120)
    finally:
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        broker_cpu = cpu_seconds(broker) - broker_cpu
        await publisher.wait()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running  # disconnected before the next flood's link takes the same client id
    return cpu / count * 1e6, broker_cpu / count * 1e6, wall, link.shed_total


async def measure(count: int, size: int, repeats: int) -> None:
    with spawned_broker("mosquitto") as endpoint:
        runs = [await flood(endpoint, count, size) for _ in range(repeats)]
    cost, broker, wall = (statistics.median(r[i] for r in runs) for i in range(3))
    print(
        "| messages | bytes each | wall s | link CPU us/message | messages/s on one core "
        "| broker CPU us/message | messages/s on one broker thread | shed |"
    )
    print(
        "|---------:|-----------:|-------:|--------------------:|-----------------------:"
        "|----------------------:|--------------------------------:|-----:|"
    )
    print(
        f"| {count:>8,} | {size:>10,} | {wall:>6.2f} | {cost:>19.1f} | {1e6 / cost:>22,.0f} "
        f"| {broker:>21.1f} | {1e6 / broker:>31,.0f} | {sum(r[3] for r in runs):>4} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=30000, help="messages a flood")
    parser.add_argument("--bytes", type=int, default=19000, help="payload bytes a message")
    parser.add_argument("--repeats", type=int, default=5, help="floods, for the median")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; median of {args.repeats} "
        "floods through one mosquitto"
    )
    asyncio.run(measure(args.messages, args.bytes, args.repeats))


if __name__ == "__main__":
    main()
