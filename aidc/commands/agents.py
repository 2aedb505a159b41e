"""`aidc agents`: a fleet of emulated nodes publishing to a broker, with a live status line."""

import argparse
import asyncio
import contextlib

from agents.topology import Site, TopologyError, generated_site, load_site, parse_shard
from aidc.commands.options import (
    RACK_KIND_NAMES,
    Subcommands,
    add_broker_options,
    add_site_source_options,
    broker_password,
    positive,
)
from aidc.errors import UsageError
from aidc.runtime.brokers import broker
from aidc.runtime.console import StatusLine, progress_bar
from aidc.runtime.signals import run_until_signalled
from protocols.endpoint import Endpoint
from protocols.faults import DEVICE_FAULTS

STATUS_EVERY_S = 1.0
CONNECTIONS = ("gateway", "rack", "node")
"""agents.fleet.CONNECTION_KINDS, without importing the fleet for --help."""


def add_parser(sub: Subcommands) -> None:
    """`aidc agents`."""
    agents = sub.add_parser(
        "agents",
        help="run a fleet of emulated GPU, NIC, switch and LPU node agents",
        description="Emulate a site's nodes and switches and publish their telemetry.",
    )
    add_broker_options(agents, site=None)
    add_site_source_options(agents, "N racks of one kind")
    agents.add_argument(
        "--rack-kind",
        choices=RACK_KIND_NAMES,
        default="nvl72",
        help="the kind of the --racks (default nvl72)",
    )
    agents.add_argument(
        "--interval", type=positive(float), default=1.0, metavar="S", help="seconds (default 1)"
    )
    agents.add_argument(
        "--shard", type=_shard, default=(0, 1), metavar="I/N", help="run every N-th rack from I"
    )
    agents.add_argument("--seed", type=int, default=0, help="noise and fault seed (default 0)")
    agents.add_argument(
        "--connection",
        choices=CONNECTIONS,
        default="gateway",
        help="gateway (default): one MQTT connection for the whole shard, speaking for every "
        "rack (each with its own birth and death), telemetry in batches of racks, one "
        "assignment message per batch; rack: one connection, birth, will and telemetry "
        "message per rack; node: one per node (18x the connections and messages for an "
        "NVL72 rack). rack and node load-test a broker with many clients",
    )
    agents.add_argument(
        "--fault-rate",
        type=_fault_rate,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="random faults per device per hour, e.g. xid=0.001 (repeatable; kinds: "
        f"{', '.join(DEVICE_FAULTS)})",
    )
    agents.add_argument(
        "--agent-logins",
        action="store_true",
        help="each agent logs in with its own id as user name and the fleet's password, as "
        "`aidc acl` sets the broker up",
    )
    agents.set_defaults(run=run)


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fault_rate(text: str) -> tuple[str, float]:
    kind, _, rate = text.partition("=")
    if kind not in DEVICE_FAULTS:
        raise argparse.ArgumentTypeError(
            f"{kind!r} is not a fault kind ({', '.join(DEVICE_FAULTS)})"
        )
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"rate {rate!r} is not a number of faults per hour >= 0")
    return kind, value


def run(args: argparse.Namespace) -> int:
    """Run the fleet until signalled."""
    return run_until_signalled(run_agents(args, broker_password(args)))


def site_of(args: argparse.Namespace) -> Site:
    """The site from --topology, or from --racks and --rack-kind."""
    if args.topology is None and args.racks is None:
        raise UsageError("give --topology FILE or --racks N (with --rack-kind)")
    try:
        if args.topology is not None:
            return load_site(args.topology, args.site)
        return generated_site(args.site or "dc1", args.racks, args.rack_kind)
    except TopologyError as error:
        raise UsageError(str(error)) from None


def connection_ids(args: argparse.Namespace, shards: int = 1) -> list[str]:
    """The ids the site's connections log in under (for `aidc acl`): the gateway of each of
    `shards` shards, or every rack's or node's agent."""
    from agents.fleet import Fleet, gateway_id

    if args.connection == "gateway":
        return [gateway_id((index, shards)) for index in range(shards)]
    fleet = Fleet(site_of(args), Endpoint("localhost", 1883), connection=args.connection)
    return [connection.id for connection in fleet.connections]


async def run_agents(args: argparse.Namespace, password: str | None) -> None:
    """Run the fleet until cancelled, showing progress, then its status, on one line."""
    from agents.fleet import Fleet

    site = site_of(args)
    with broker(args.broker, password=password, ca_file=args.ca_file) as endpoint:
        fleet = Fleet(
            site,
            endpoint,
            interval_s=args.interval,
            seed=args.seed,
            shard=args.shard,
            connection=args.connection,
            fault_rates=dict(args.fault_rate),
            agent_logins=args.agent_logins,
        )
        shard = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard[1] > 1 else ""
        print(
            f"aidc agents: {len(fleet.agents):,} agents on {len(fleet.connections):,} "
            f"{args.connection} connection{'s' if len(fleet.connections) != 1 else ''}, "
            f"{fleet.gpus:,} GPUs of site {site.site}{shard}, every {args.interval:g} s to "
            f"{endpoint.url} (Ctrl-C to stop)",
            flush=True,
        )
        line = StatusLine()
        connecting = True

        def on_connecting(up: int, total: int) -> None:
            line.show("connecting " + progress_bar(up, total, "agents"))

        async def report() -> None:
            nonlocal connecting
            while True:
                await asyncio.sleep(STATUS_EVERY_S)
                status = fleet.status()
                connecting = connecting and status.up < status.agents
                if connecting:
                    on_connecting(status.up, status.agents)
                else:
                    rejected = f" · {status.rejected:,} rejected" if status.rejected else ""
                    line.show(
                        f"{status.up:,}/{status.agents:,} agents up · "
                        f"{status.messages_per_s:,.0f} msg/s · "
                        f"{status.gpu_samples_per_s:,.0f} GPU samples/s{rejected}"
                    )

        reporter = asyncio.create_task(report())
        try:
            await fleet.run(on_connecting)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            line.close()
            print(
                f"aidc agents: stopped; {fleet.deaths_published:,} of {len(fleet.agents):,} "
                "deaths published",
                flush=True,
            )
