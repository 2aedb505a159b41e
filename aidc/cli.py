"""The `aidc` command line: one subcommand per way of running the data center."""

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from agents.catalog import RACK_KINDS
from aidc import __version__
from aidc.brokers import BrokerError, parse_spawn_spec, running_broker
from aidc.console import ConsoleHandler
from aidc.errors import UsageError
from protocols.endpoint import Endpoint, parse_broker_url
from protocols.ids import check_id

RACK_KIND_NAMES = sorted(RACK_KINDS)
PASSWORD_ENV = "AIDC_MQTT_PASSWORD"
DEFAULT_SITE = "dc1"
DEFAULT_TUI_BROKER = "mqtt://127.0.0.1:1883"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _site(value: str) -> str:
    try:
        return check_id(value, "site")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _broker_spec(value: str) -> str:
    try:
        if parse_spawn_spec(value) is None:
            parse_broker_url(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def add_broker_options(
    parser: argparse.ArgumentParser,
    site: str | None = DEFAULT_SITE,
    broker: str = "embedded",
    *,
    site_help: str | None = None,
) -> None:
    """--broker, --password-file, --ca-file and --site, the same for every subcommand."""
    parser.add_argument(
        "--broker",
        type=_broker_spec,
        default=broker,
        metavar="SPEC",
        help="'embedded[:PORT]' (default: start the built-in broker), 'mosquitto[:PORT]' "
        "(start the local mosquitto) or mqtt[s]://[user@]host[:port]"
        if broker == "embedded"
        else f"mqtt[s]://[user@]host[:port] of the site's broker (default {broker})",
    )
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help=f"file whose first line is the broker password (else ${PASSWORD_ENV})",
    )
    parser.add_argument("--ca-file", metavar="FILE", help="CA bundle for mqtts:// brokers")
    parser.add_argument(
        "--site",
        type=_site,
        default=site,
        help=site_help or f"site id (default {site or 'from the topology'})",
    )


def broker_password(args: argparse.Namespace) -> str | None:
    """The password from --password-file, else from the environment, else None."""
    path: Path | None = args.password_file
    if path is None:
        return os.environ.get(PASSWORD_ENV) or None
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise UsageError(f"cannot read password file {path}: {error.strerror}") from None
    return lines[0].strip() if lines else ""


def attach(args: argparse.Namespace, command: str) -> Endpoint:
    """The running broker (--broker and its credentials) that `aidc COMMAND` attaches to,
    with its connection logging only trouble (unless -v): the command's status line says
    whether it is connected."""
    if not args.verbose:
        logging.getLogger("aidc.link").setLevel(logging.WARNING)
    password = broker_password(args)
    return running_broker(args.broker, command, password=password, ca_file=args.ca_file)


def _run_broker(args: argparse.Namespace) -> int:
    from aidc.embedded_broker import serve

    url = f"mqtt://{args.bind}:{args.port}"
    announce = lambda: print(  # noqa: E731
        f"aidc broker: embedded MQTT 3.1.1 broker on {url} (Ctrl-C to stop)", flush=True
    )
    try:
        return run_until_signalled(serve(args.bind, args.port, announce))
    except OSError as error:
        raise BrokerError(str(error)) from None


def _positive(kind: type[int] | type[float], zero: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= 0 if zero else value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} is {'below' if zero else 'not above'} 0")
        return value

    return parse


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """--metrics-port and --metrics-host: the core's Prometheus endpoint, off by default."""
    parser.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (dcgm-exporter uses 9400)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address the metrics are served on (default 127.0.0.1; 0.0.0.0 for every one)",
    )


def _shard(text: str) -> tuple[int, int]:
    from agents.topology import parse_shard

    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fault_rate(text: str) -> tuple[str, float]:
    from agents.groups import RANDOM_FAULT_KINDS

    kind, _, rate = text.partition("=")
    if kind not in RANDOM_FAULT_KINDS:
        raise argparse.ArgumentTypeError(
            f"{kind!r} is not a fault kind ({', '.join(RANDOM_FAULT_KINDS)})"
        )
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"rate {rate!r} is not a number of faults per hour >= 0")
    return kind, value


def _async_command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand that runs `module.name(args, password)` until it ends or is signalled
    (imported only when chosen, so `aidc --help` stays quick)."""

    def run(args: argparse.Namespace) -> int:
        command = getattr(importlib.import_module(module), name)
        return run_until_signalled(command(args, broker_password(args)))

    return run


def run_until_signalled(coroutine: Coroutine[Any, Any, object]) -> int:
    """Run a coroutine until it ends or SIGINT/SIGTERM arrive, then cancel it cleanly; the
    exit code shells expect: 0 if it ended, 128 + the signal's number if one stopped it
    (130 for Ctrl-C)."""
    received: list[int] = []

    async def guarded() -> None:
        task = asyncio.ensure_future(coroutine)
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            received.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop, signum)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(guarded())
    return 128 + received[0] if received else 0


def _run_acl(args: argparse.Namespace) -> int:
    from aidc.acl import run_acl
    from aidc.agents_command import agent_ids

    return run_acl(args, agent_ids(args))


def _run_tui(args: argparse.Namespace) -> int:
    from aidc.tui_command import run_tui

    return run_tui(args, broker_password(args))


def build_parser() -> argparse.ArgumentParser:
    """The parser of `aidc` and every subcommand."""
    parser = _Parser(
        prog="aidc",
        description="A terminal control plane for a simulated AI data center.",
    )
    parser.add_argument("--version", action="version", version=f"aidc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(title="subcommands", metavar="COMMAND", required=True)

    broker = sub.add_parser("broker", help="run the embedded MQTT broker in the foreground")
    broker.add_argument("--port", type=int, default=1883, help="TCP port (default 1883)")
    broker.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    broker.set_defaults(run=_run_broker)

    agents = sub.add_parser(
        "agents",
        help="run a fleet of emulated GPU, NIC, switch and LPU node agents",
        description="Emulate a site's nodes and switches and publish their telemetry.",
    )
    add_broker_options(agents, site=None)
    source = agents.add_mutually_exclusive_group()
    source.add_argument("--topology", type=Path, metavar="FILE", help="a TOML site description")
    source.add_argument("--racks", type=_positive(int), metavar="N", help="N racks of one kind")
    agents.add_argument(
        "--rack-kind",
        choices=RACK_KIND_NAMES,
        default="nvl72",
        help="the kind of the --racks (default nvl72)",
    )
    agents.add_argument(
        "--interval", type=_positive(float), default=1.0, metavar="S", help="seconds (default 1)"
    )
    agents.add_argument(
        "--shard", type=_shard, default=(0, 1), metavar="I/N", help="run every N-th rack from I"
    )
    agents.add_argument("--seed", type=int, default=0, help="noise and fault seed (default 0)")
    agents.add_argument(
        "--connection",
        choices=["rack", "node"],
        default="rack",
        help="one MQTT connection per rack (default: one birth, will and telemetry message per "
        "rack per interval) or per node (a node's death is its own, at 18x the connections "
        "and messages for an NVL72 rack)",
    )
    agents.add_argument(
        "--fault-rate",
        type=_fault_rate,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="random faults per device per hour, e.g. xid=0.001 (repeatable; kinds: "
        "xid, cooling, link_flap, pause_storm, lpu_chip)",
    )
    agents.add_argument(
        "--agent-logins",
        action="store_true",
        help="each agent logs in with its own id as user name and the fleet's password, as "
        "`aidc acl` sets the broker up",
    )
    agents.set_defaults(run=_async_command("aidc.agents_command", "run_agents"))

    acl = sub.add_parser(
        "acl",
        help="write a mosquitto password file and ACL for a site's roles",
        description="Write passwd, acl and mosquitto.conf for the roles operator (reads, "
        "commands), viewer (reads state), core (everything) and one login per agent (speaks "
        "only for itself). Passwords come from AIDC_ACL_<ROLE>_PASSWORD or are generated, "
        "and are written to OUT/secrets/.",
    )
    acl.add_argument("--site", type=_site, default=DEFAULT_SITE, help="site id (default dc1)")
    acl.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    acl.add_argument("--port", type=_positive(int), default=1883, help="listener port (1883)")
    acl_source = acl.add_mutually_exclusive_group()
    acl_source.add_argument("--topology", type=Path, metavar="FILE", help="a TOML site")
    acl_source.add_argument("--racks", type=_positive(int), metavar="N", help="N racks")
    acl.add_argument("--rack-kind", choices=RACK_KIND_NAMES, default="nvl72")
    acl.add_argument("--connection", choices=["rack", "node"], default="rack")
    acl.set_defaults(run=_run_acl)

    core = sub.add_parser(
        "core",
        help="run the simulation core and control plane",
        description="Simulate the site's inference traffic on the fleet the agents report, "
        "and carry out operator commands.",
    )
    add_broker_options(core)
    core.add_argument("--seed", type=int, default=0, help="traffic and routing seed (default 0)")
    core.add_argument(
        "--tick", type=_positive(float), default=1.0, metavar="S", help="seconds a tick (default 1)"
    )
    core.add_argument(
        "--speed",
        type=_positive(float),
        default=1.0,
        metavar="X",
        help="simulated seconds per real second (default 1)",
    )
    core.add_argument(
        "--state-db",
        metavar="FILE",
        help="SQLite journal of desired state and commands, kept across restarts",
    )
    add_metrics_options(core)
    core.set_defaults(run=_async_command("aidc.core_command", "run_core"))

    watch = sub.add_parser("watch", help="print every message of a site, decoded, as JSON lines")
    add_broker_options(watch)
    watch.set_defaults(run=_async_command("aidc.watch", "watch"))

    tui = sub.add_parser(
        "tui",
        help="attach the operator dashboard to a site",
        description="Watch a site live and drain, route and scale it from the keyboard.",
    )
    add_broker_options(tui, broker=DEFAULT_TUI_BROKER)
    tui.add_argument(
        "--read-only", action="store_true", help="watch only: every mutation is hidden and refused"
    )
    tui.set_defaults(run=_run_tui)

    _add_demo(sub)
    _add_scenario(sub)
    _add_record_replay(sub)
    return parser


def _sync_command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand whose `module.name(args)` returns the exit code (imported when chosen)."""

    def run(args: argparse.Namespace) -> int:
        code: int = getattr(importlib.import_module(module), name)(args)
        return code

    return run


def _add_demo(sub: "argparse._SubParsersAction[_Parser]") -> None:
    demo = sub.add_parser(
        "demo",
        help="start broker, core, fleet and dashboard together",
        description="Start the embedded broker, the core and a fleet (two GB200 NVL72, four "
        "HGX H100 and two LPU racks unless told otherwise) as separate processes, then the "
        "dashboard; quitting stops them all.",
    )
    add_broker_options(demo, site=None)
    source = demo.add_mutually_exclusive_group()
    source.add_argument("--topology", type=Path, metavar="FILE", help="a TOML site description")
    source.add_argument(
        "--racks", type=_positive(int), metavar="N", help="N racks in the default mix"
    )
    demo.add_argument(
        "--rack-kind", choices=RACK_KIND_NAMES, help="make every one of the --racks this kind"
    )
    demo.add_argument(
        "--speed",
        type=_positive(float),
        default=1.0,
        metavar="X",
        help="simulated seconds per real second (default 1)",
    )
    demo.add_argument("--seed", type=int, default=0, help="traffic and noise seed (default 0)")
    demo.add_argument(
        "--headless", action="store_true", help="no dashboard: a one-line status instead"
    )
    add_metrics_options(demo)
    demo.set_defaults(run=_sync_command("aidc.demo", "main"))


def _add_scenario(sub: "argparse._SubParsersAction[_Parser]") -> None:
    scenario = sub.add_parser(
        "scenario",
        help="run scripted scenario files",
        description="Run TOML scenario files: a site, its traffic and a timeline of faults, "
        "commands and expectations (see scenarios/ and the README).",
    )
    actions = scenario.add_subparsers(title="actions", metavar="ACTION", required=True)
    for action, summary in (
        ("run", "run scenario files, each step printed as it passes or fails"),
        ("check", "read scenario files and report their mistakes, without running them"),
    ):
        command = actions.add_parser(action, help=summary, description=summary)
        command.add_argument("files", nargs="+", type=Path, metavar="FILE")
        command.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
        command.set_defaults(run=_sync_command("aidc.scenario_command", "run"), action=action)
        if action == "run":
            add_broker_options(command, site=None)
            command.add_argument(
                "--speed",
                type=_positive(float),
                metavar="X",
                help="run on a real clock X times faster than real time (default: the "
                "file's clock, a manual one unless it says speed)",
            )


def _add_record_replay(sub: "argparse._SubParsersAction[_Parser]") -> None:
    record = sub.add_parser(
        "record",
        help="record every message of a site to a file",
        description="Append every message of a site (its time, topic, payload, QoS and "
        "retain flag) to a recording file until Ctrl-C; a crash leaves the file readable.",
    )
    add_broker_options(record, broker=DEFAULT_TUI_BROKER)
    record.add_argument(
        "-o", "--output", type=Path, required=True, metavar="FILE", help="a new file to write"
    )
    record.set_defaults(run=_sync_command("aidc.record", "main"))

    replay = sub.add_parser(
        "replay",
        help="publish a recording again, with its original timing",
        description="Publish a recording's messages to a broker at their recorded pace (or "
        "faster), so `aidc tui` shows the incident as it happened, as a replay with commands "
        "disabled. Refuses a site with a live core.",
    )
    replay.add_argument("file", type=Path, metavar="FILE", help="a file `aidc record` wrote")
    add_broker_options(
        replay,
        site=None,
        broker=DEFAULT_TUI_BROKER,
        site_help="publish under this site instead of the recorded one",
    )
    replay.add_argument(
        "--speed",
        type=_positive(float, zero=True),
        default=1.0,
        metavar="X",
        help="X times the recorded pace (default 1; 0: as fast as the broker takes them)",
    )
    replay.set_defaults(run=_sync_command("aidc.replay", "main"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run `aidc`; return its exit code. User errors are one line on stderr, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("aidc: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        code: int = args.run(args)
    except UsageError as error:
        print(f"aidc: {error}", file=sys.stderr)
        return 2
    except BrokerError as error:
        print(f"aidc: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
