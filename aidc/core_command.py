"""`aidc core`: the simulation core and control plane of one site, on a broker."""

import argparse

from aidc.brokers import broker
from aidc.errors import UsageError
from sim.clock import RealClock
from sim.journal import JournalError
from sim.service import CoreService


async def run_core(args: argparse.Namespace, password: str | None) -> None:
    """Run the core until cancelled."""
    with broker(args.broker, password=password, ca_file=args.ca_file) as endpoint:
        try:
            core = CoreService(
                endpoint,
                args.site,
                seed=args.seed,
                tick_s=args.tick,
                clock=RealClock(speed=args.speed),
                state_db=args.state_db or ":memory:",
            )
        except JournalError as error:
            raise UsageError(str(error)) from None
        journal = args.state_db or "memory only (desired state is lost on exit)"
        print(
            f"aidc core: site {args.site} on {endpoint.url}, tick {args.tick:g} s, "
            f"speed {args.speed:g}x, journal {journal} (Ctrl-C to stop)",
            flush=True,
        )
        await core.run()
