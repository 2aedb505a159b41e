"""The broker a command asked for: the embedded one or a local mosquitto in a child process,
or nothing to start for the URL of an external broker."""

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aidc.errors import UsageError
from aidc.runtime.children import die_with_parent, stop_process
from protocols.endpoint import Endpoint, parse_broker_url
from protocols.errors import AidcError

SPAWNED = ("embedded", "mosquitto")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto",)
"""Where Debian puts mosquitto, outside a normal user's PATH."""
QUEUED_PER_CLIENT = 200_000
"""QoS 1 messages the spawned mosquitto holds for one client: a 100k-agent site's births, twice
(mosquitto's default is 1000)."""


class BrokerError(AidcError, RuntimeError):
    """A broker could not be started; `str()` is one sentence for the user."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def parse_spawn_spec(spec: str) -> tuple[str, int | None] | None:
    """`embedded[:PORT]` or `mosquitto[:PORT]` as (kind, port); None for anything else."""
    kind, _, port_text = spec.partition(":")
    if kind not in SPAWNED:
        return None
    if not port_text:
        return kind, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"broker port {port_text!r} is not a port number (1-65535)")
    return kind, int(port_text)


def _command(kind: str, bind: str, port: int, workdir: Path, queued: int) -> list[str]:
    if kind == "embedded":
        return [sys.executable, "-m", "aidc", "broker", "--bind", bind, "--port", str(port)]
    binary = shutil.which("mosquitto") or next(
        (path for path in MOSQUITTO_PATHS if Path(path).exists()), None
    )
    if binary is None:
        raise BrokerError(
            "mosquitto is not installed (apt-get install mosquitto); use --broker embedded"
        )
    config = workdir / "mosquitto.conf"
    # After a broker restart every agent's birth reaches the core at once (1,094 for the 1,000
    # racks of tests/chaos/test_broker_outages.py); mosquitto's default holds 1000 per client
    # and drops the rest, and the core then waits for each agent's rebirth.
    config.write_text(
        f"listener {port} {bind}\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages {queued}\nlog_dest stderr\nlog_type error\n"
    )
    return [binary, "-c", str(config)]


def _listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _wait_listening(process: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            why = lines[-1] if lines else f"exit code {process.returncode}"
            raise BrokerError(f"the broker on port {port} exited at start: {why}")
        if _listening(host, port):
            return
        time.sleep(0.05)
    raise BrokerError(f"the broker did not listen on {host}:{port} within {START_TIMEOUT_S:g} s")


@contextlib.contextmanager
def spawned_broker(
    kind: str, port: int | None = None, bind: str = "127.0.0.1", queued: int = QUEUED_PER_CLIENT
) -> Iterator[Endpoint]:
    """Run an `embedded` or `mosquitto` broker in a child process for the duration; a mosquitto
    holds `queued` QoS 1 messages per client."""
    port = port or free_port(bind)
    host = "127.0.0.1" if bind in ("0.0.0.0", "") else bind
    if _listening(host, port):
        raise BrokerError(f"{host}:{port} is already in use; choose another broker port")
    with tempfile.TemporaryDirectory(prefix="aidc-broker-") as tmp:
        workdir = Path(tmp)
        log = workdir / "broker.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                _command(kind, bind, port, workdir, queued),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                preexec_fn=die_with_parent,
                start_new_session=True,  # Ctrl-C stops the command, which stops the broker last
            )
        try:
            _wait_listening(process, host, port, log)
            yield Endpoint(host=host, port=port, mqtt5=kind == "mosquitto")
        finally:
            stop_process(process, STOP_TIMEOUT_S)


@contextlib.contextmanager
def broker(
    spec: str, *, password: str | None = None, ca_file: str | None = None
) -> Iterator[Endpoint]:
    """The endpoint of `spec`: `embedded[:PORT]`, `mosquitto[:PORT]` (started here and stopped
    on exit) or `mqtt[s]://[user@]host[:port]` (already running elsewhere)."""
    spawn = parse_spawn_spec(spec)
    if spawn is None:
        yield parse_broker_url(spec, password=password, ca_file=ca_file)
        return
    with spawned_broker(*spawn) as endpoint:
        yield endpoint


def running_broker(
    spec: str, command: str, *, password: str | None = None, ca_file: str | None = None
) -> Endpoint:
    """The endpoint of a broker that is already running, for a command that attaches to a
    site; UsageError for `embedded` or `mosquitto` (they would start an empty one)."""
    if parse_spawn_spec(spec) is not None:
        raise UsageError(
            f"aidc {command} attaches to a running broker, not {spec!r}: give the core's "
            "--broker mqtt://HOST:PORT"
        )
    try:
        return parse_broker_url(spec, password=password, ca_file=ca_file)
    except ValueError as error:
        raise UsageError(str(error)) from None
