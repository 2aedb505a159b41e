"""`aidc demo`: a whole data center from one command. The broker, the core and the fleet run
as child processes, each in its own session and bound to die with this one; the dashboard
runs in the foreground (or, with --headless, a status line). Quitting, a crashed component,
a closed terminal or a killed demo leaves no process behind."""

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from agents.topology import Site, TopologyError
from aidc.commands.options import (
    RACK_KIND_NAMES,
    Subcommands,
    add_broker_options,
    add_metrics_options,
    add_site_source_options,
    add_speed_option,
    broker_password,
)
from aidc.errors import UsageError
from aidc.runtime.brokers import BrokerError, parse_spawn_spec
from aidc.runtime.brokers import broker as broker_for
from aidc.runtime.children import Child, die_with_parent
from aidc.runtime.console import StatusLine, progress_bar
from aidc.runtime.signals import run_until_signalled
from aidc.runtime.terminal import kept_terminal
from aidc.site.client import SiteClient, SiteUnavailable
from aidc.site.demo_site import demo_site, describe, topology_toml
from aidc.site.state import State
from protocols.endpoint import Endpoint
from protocols.errors import AidcError

STATUS_EVERY_S = 1.0
CORE_START_S = 180.0
"""A first run compiles the core's numba kernels before its first tick."""
FLEET_START_S = 120.0
REACH_TIMEOUT_S = 5.0
DASHBOARD_MODULES = ("aidc.commands.tui", "tui.app")


class ComponentStopped(AidcError):
    """A child process exited while the demo ran; `str()` says which and why."""


def add_parser(sub: Subcommands) -> None:
    """`aidc demo`."""
    demo = sub.add_parser(
        "demo",
        help="start broker, core, fleet and dashboard together",
        description="Start the embedded broker, the core and a fleet (two GB200 NVL72, four "
        "HGX H100 and two LPU racks unless told otherwise) as separate processes, then the "
        "dashboard; quitting stops them all.",
    )
    add_broker_options(demo, site=None)
    add_site_source_options(demo, "N racks in the default mix")
    demo.add_argument(
        "--rack-kind", choices=RACK_KIND_NAMES, help="make every one of the --racks this kind"
    )
    add_speed_option(demo)
    demo.add_argument("--seed", type=int, default=0, help="traffic and noise seed (default 0)")
    demo.add_argument(
        "--headless", action="store_true", help="no dashboard: a one-line status instead"
    )
    add_metrics_options(demo)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo until it is quit or signalled; the exit code."""
    codes: list[int] = []

    async def demo() -> None:
        codes.append(await run_demo(args, broker_password(args)))

    signalled = run_until_signalled(demo())
    return signalled or (codes[0] if codes else 0)


async def run_demo(args: argparse.Namespace, password: str | None) -> int:
    """Start everything, run the dashboard or the status line until asked to stop, then stop
    everything in order (dashboard, agents, core, broker); 1 if a component failed."""
    if not args.headless and not _dashboard_available():
        raise UsageError(
            "the dashboard (aidc tui) is not installed in this build; run 'aidc demo --headless'"
        )
    try:
        site = demo_site(args.site, args.topology, args.racks, args.rack_kind)
    except TopologyError as error:
        raise UsageError(str(error)) from None
    print(f"aidc demo: site {site.site}, {describe(site)}, {args.speed:g}x real time", flush=True)
    logging.getLogger("aidc.link").setLevel(logging.WARNING)
    try:
        return await _demo(args, password, site)
    finally:
        print("aidc demo: stopped; every process it started has exited", flush=True)


async def _demo(args: argparse.Namespace, password: str | None, site: Site) -> int:
    line = StatusLine()
    with tempfile.TemporaryDirectory(prefix="aidc-demo-") as tmp, _stopping_on_hangup():
        work = Path(tmp)
        (work / "site.toml").write_text(topology_toml(site))
        spawn = parse_spawn_spec(args.broker) is not None
        line.show(f"starting the {args.broker} broker" if spawn else f"reaching {args.broker}")
        with broker_for(args.broker, password=password, ca_file=args.ca_file) as endpoint:
            _check_reachable(endpoint)
            children = _children(args, site, endpoint, work, password)
            code = 0
            try:
                async with SiteClient(endpoint, site.site, "demo") as client:
                    await _start(children, client, site, line)
                    line.close()
                    code = await _run(args, endpoint, site, children, client)
            except (ComponentStopped, SiteUnavailable) as stopped:
                line.close()
                print(f"aidc demo: {stopped}", file=sys.stderr, flush=True)
                code = 1
            finally:
                line.close()
                await asyncio.shield(_stop_all(children))
    return code


def _check_reachable(endpoint: Endpoint) -> None:
    """BrokerError at once if nothing answers at the broker's address (rather than children
    that retry forever)."""
    try:
        socket.create_connection((endpoint.host, endpoint.port), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        why = error.strerror or type(error).__name__
        raise BrokerError(f"broker {endpoint.url} is unreachable ({why})") from None


def kernels_cached() -> bool:
    """Whether numba's cache holds compiled kernels of the core (`sim`), from an earlier run:
    in $NUMBA_CACHE_DIR if set, else in `sim/__pycache__` (found without importing `sim`)."""
    if cache := os.environ.get("NUMBA_CACHE_DIR"):
        roots = [Path(cache)]
    else:
        spec = importlib.util.find_spec("sim")
        places = spec.submodule_search_locations if spec else None
        roots = [Path(place) / "__pycache__" for place in places or []]
    return any(next(root.rglob("*.nbi"), None) is not None for root in roots if root.is_dir())


def _dashboard_available() -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in DASHBOARD_MODULES)
    except ImportError:
        return False


@contextlib.contextmanager
def _stopping_on_hangup() -> Iterator[None]:
    """A closed terminal (SIGHUP) stops the demo as Ctrl-C does, cleanly."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGHUP, task.cancel)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def _children(
    args: argparse.Namespace, site: Site, endpoint: Endpoint, work: Path, password: str | None
) -> dict[str, Child]:
    url = ["--broker", endpoint.url, "--site", site.site]
    url += ["--ca-file", args.ca_file] if args.ca_file else []
    env = {"AIDC_MQTT_PASSWORD": password} if password else {}
    seed = ["--seed", str(args.seed)]
    core = ["core", *url, *seed, "--speed", str(args.speed)]
    if args.metrics_port is not None:
        core += ["--metrics-port", str(args.metrics_port), "--metrics-host", args.metrics_host]
    agents = ["agents", *url, *seed, "--topology", str(work / "site.toml")]
    return {
        "core": Child("core", core, work / "core.log", env),
        "agents": Child("agents", agents, work / "agents.log", env),
    }


async def _start(
    children: dict[str, Child], client: SiteClient, site: Site, line: StatusLine
) -> None:
    """Start the core, then the agents, showing how far each has got."""
    for child in children.values():
        await child.start()
    began = time.monotonic()
    compiling = "" if kernels_cached() else "; a first run compiles its kernels"

    def core_up() -> bool:
        core = client.state.core
        return core is not None and core.online and client.state.summary is not None

    def waiting() -> None:
        waited = time.monotonic() - began
        line.show(f"starting the core ({waited:.0f} s{compiling})")

    await _until(children, core_up, CORE_START_S, waiting, "the core did not come online")
    nodes = sum(r.kind.nodes_per_rack for r in site.racks) + len(site.fabric.switches)

    def seen() -> int:
        summary = client.state.summary
        return sum(summary.nodes.values()) if summary else 0

    await _until(
        children,
        lambda: seen() >= nodes,
        FLEET_START_S,
        lambda: line.show("starting the agents " + progress_bar(seen(), nodes, "nodes")),
        "the agents did not all reach the core",
    )


async def _until(
    children: dict[str, Child],
    done: Callable[[], bool],
    within_s: float,
    show: Callable[[], None],
    failure: str,
) -> None:
    deadline = time.monotonic() + within_s
    while not done():
        _check(children)
        if time.monotonic() > deadline:
            raise ComponentStopped(f"{failure} within {within_s:g} s")
        show()
        await asyncio.sleep(0.2)


def _check(children: dict[str, Child]) -> None:
    for child in children.values():
        if child.exit_code is not None:
            raise ComponentStopped(
                f"the {child.name} stopped (exit code {child.exit_code}): {child.last_words()}"
            )


async def _run(
    args: argparse.Namespace,
    endpoint: Endpoint,
    site: Site,
    children: dict[str, Child],
    client: SiteClient,
) -> int:
    """The status line until signalled, or the dashboard until it quits (its exit code)."""
    if args.headless:
        print(
            f"aidc demo: running; watch it with 'aidc tui --broker {endpoint.url} --site "
            f"{site.site}' (Ctrl-C to stop)",
            flush=True,
        )
        line = StatusLine()
        try:
            while True:
                _check(children)
                line.show(status(client.state, site))
                await asyncio.sleep(STATUS_EVERY_S)
        finally:
            line.close()
    dashboard = ["tui", "--broker", endpoint.url, "--site", site.site]
    with kept_terminal():
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aidc",
            *dashboard,
            env=os.environ | children["core"].env,
            preexec_fn=die_with_parent,
        )
        try:
            while process.returncode is None:
                _check(children)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), STATUS_EVERY_S)
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()
    return process.returncode or 0


async def _stop_all(children: dict[str, Child]) -> None:
    """Agents first, so their deaths reach the core; then the core."""
    for name in ("agents", "core"):
        await children[name].stop()


def status(state: State, site: Site) -> str:
    """The one-line status: time, nodes, GPUs, traffic, latency, power."""
    summary = state.summary
    if summary is None:
        return f"{site.site}: waiting for the core"
    clock = time.strftime("%H:%M:%S", time.gmtime(summary.time))
    nodes = sum(summary.nodes.values())
    pools = state.pools.pools if state.pools else []
    ready = sum(p.replicas_ready for p in pools)
    wanted = sum(p.replicas_desired for p in pools if p.has_hardware)
    return (
        f"{site.site} {clock} UTC ({summary.speed:g}x) · "
        f"{summary.nodes.get('ready', 0)}/{nodes} nodes ready · "
        f"{summary.gpus_healthy}/{summary.gpus} GPUs · {ready}/{wanted} replicas · "
        f"{summary.requests_per_s:,.1f} req/s · {summary.tokens_per_s:,.0f} tok/s · "
        f"TTFT p99 {summary.ttft_p99_s:.2f} s · {summary.power_w / 1000:,.1f} kW"
    )
