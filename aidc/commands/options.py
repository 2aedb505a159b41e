"""The options and argument types subcommands share: the broker and its credentials, the
site, ports, positive numbers, shards, fault rates and the metrics endpoint."""

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from agents.catalog import RACK_KINDS
from aidc.errors import UsageError
from aidc.runtime.brokers import parse_spawn_spec, running_broker
from protocols.endpoint import Endpoint, parse_broker_url
from protocols.ids import check_id

RACK_KIND_NAMES = sorted(RACK_KINDS)
PASSWORD_ENV = "AIDC_MQTT_PASSWORD"
DEFAULT_SITE = "dc1"
DEFAULT_TUI_BROKER = "mqtt://127.0.0.1:1883"

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The type of the object `add_parser(sub)` adds a subcommand's parser to."""


def site_id(value: str) -> str:
    """A --site value: a valid site id."""
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
        type=site_id,
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


def positive(kind: type[int] | type[float], zero: bool = False) -> Callable[[str], float]:
    """An argument type: a number of `kind` above 0 (or at least 0 with `zero`)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value >= 0 if zero else value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} is {'below' if zero else 'not above'} 0")
        return value

    return parse


def port(text: str) -> int:
    """An argument type: a TCP port number."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return int(text)


def add_speed_option(parser: argparse.ArgumentParser) -> None:
    """--speed: simulated seconds per real second."""
    parser.add_argument(
        "--speed",
        type=positive(float),
        default=1.0,
        metavar="X",
        help="simulated seconds per real second (default 1)",
    )


def add_site_source_options(parser: argparse.ArgumentParser, racks_help: str) -> None:
    """--topology FILE or --racks N: where a site's racks come from."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--topology", type=Path, metavar="FILE", help="a TOML site description")
    source.add_argument("--racks", type=positive(int), metavar="N", help=racks_help)


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """--metrics-port and --metrics-host: the core's Prometheus endpoint, off by default."""
    parser.add_argument(
        "--metrics-port",
        type=port,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (dcgm-exporter uses 9400)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address the metrics are served on (default 127.0.0.1; 0.0.0.0 for every one)",
    )
