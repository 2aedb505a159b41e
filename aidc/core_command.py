"""`aidc core`: the simulation core and control plane of one site, on a broker."""

import argparse
import contextlib

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
        async with contextlib.AsyncExitStack() as stack:
            metrics = (
                await _serve_metrics(stack, core, args) if args.metrics_port is not None else ""
            )
            print(
                f"aidc core: site {args.site} on {endpoint.url}, tick {args.tick:g} s, "
                f"speed {args.speed:g}x, journal {journal}{metrics} (Ctrl-C to stop)",
                flush=True,
            )
            await core.run()


async def _serve_metrics(
    stack: contextlib.AsyncExitStack, core: CoreService, args: argparse.Namespace
) -> str:
    """Serve the core's Prometheus metrics until the stack closes; what the start line adds."""
    from sim.metrics import CoreMetrics
    from sim.metrics_server import serving

    try:
        server = await stack.enter_async_context(
            serving(CoreMetrics(core), args.metrics_host, args.metrics_port)
        )
    except OSError as error:
        raise UsageError(
            f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
            f"{error.strerror or error}"
        ) from None
    return f", metrics at {server.url}"
