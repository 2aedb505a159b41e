"""`aidc core`: the simulation core and control plane of one site, on a broker."""

import argparse
import contextlib
from typing import TYPE_CHECKING

from aidc.commands.options import (
    Subcommands,
    add_broker_options,
    add_metrics_options,
    add_speed_option,
    broker_password,
    positive,
)
from aidc.errors import UsageError
from aidc.runtime.brokers import broker
from aidc.runtime.signals import run_until_signalled

if TYPE_CHECKING:
    from sim.service import CoreService


def add_parser(sub: Subcommands) -> None:
    """`aidc core`."""
    core = sub.add_parser(
        "core",
        help="run the simulation core and control plane",
        description="Simulate the site's inference traffic on the fleet the agents report, "
        "and carry out operator commands.",
    )
    add_broker_options(core)
    core.add_argument("--seed", type=int, default=0, help="traffic and routing seed (default 0)")
    core.add_argument(
        "--tick", type=positive(float), default=1.0, metavar="S", help="seconds a tick (default 1)"
    )
    add_speed_option(core)
    core.add_argument(
        "--state-db",
        metavar="FILE",
        help="SQLite journal of desired state and commands, kept across restarts",
    )
    add_metrics_options(core)
    core.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the core until signalled."""
    return run_until_signalled(run_core(args, broker_password(args)))


async def run_core(args: argparse.Namespace, password: str | None) -> None:
    """Run the core until cancelled (the simulation is imported only now: `aidc --help` and
    the other subcommands do not wait for numba)."""
    from sim.clock import RealClock
    from sim.journal import JournalError
    from sim.service import CoreService

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
    stack: contextlib.AsyncExitStack, core: "CoreService", args: argparse.Namespace
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
