"""`aidc agents`: a fleet of emulated nodes publishing to a broker, with a live status line."""

import argparse
import asyncio
import contextlib

from agents.fleet import Fleet
from agents.topology import Site, TopologyError, generated_site, load_site
from aidc.brokers import broker
from aidc.console import StatusLine, progress_bar
from aidc.errors import UsageError
from protocols.endpoint import Endpoint

STATUS_EVERY_S = 1.0


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


def agent_ids(args: argparse.Namespace) -> list[str]:
    """The ids the site's agents connect under (for `aidc acl`)."""
    fleet = Fleet(site_of(args), Endpoint("localhost", 1883), per_node=args.connection == "node")
    return [agent.id for agent in fleet.agents]


async def run_agents(args: argparse.Namespace, password: str | None) -> None:
    """Run the fleet until cancelled, showing progress, then its status, on one line."""
    site = site_of(args)
    with broker(args.broker, password=password, ca_file=args.ca_file) as endpoint:
        fleet = Fleet(
            site,
            endpoint,
            interval_s=args.interval,
            seed=args.seed,
            shard=args.shard,
            per_node=args.connection == "node",
            fault_rates=dict(args.fault_rate),
            agent_logins=args.agent_logins,
        )
        shard = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard[1] > 1 else ""
        print(
            f"aidc agents: {len(fleet.agents):,} agents, {fleet.gpus:,} GPUs of site "
            f"{site.site}{shard}, every {args.interval:g} s to {endpoint.url} (Ctrl-C to stop)",
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
