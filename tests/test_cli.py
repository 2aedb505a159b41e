"""The `aidc` command as a user meets it: help, one-line errors, the broker and watch."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aidc.runtime.brokers import BrokerError, free_port, parse_spawn_spec, spawned_broker
from protocols.endpoint import Endpoint, parse_broker_url
from tests.mqtt import listening, wait_listening

ROOT = Path(__file__).resolve().parent.parent
SUBCOMMANDS = ["broker", "watch", "agents", "core", "tui", "demo", "scenario", "record", "replay"]


def aidc(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aidc", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def start(*args: str) -> subprocess.Popen[str]:
    """`aidc` in its own process group, as a terminal would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "aidc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )


def test_help_lists_every_subcommand() -> None:
    result = aidc("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "aidc: "),
        (["broker", "--port", "x"], "argument --port: invalid int value: 'x'"),
        (["watch", "--broker", "http://h"], "is not 'embedded', 'mosquitto' or an mqtt://"),
        (["watch", "--broker", "mqtt://me:secret@h"], "not in the URL"),
        (["watch", "--broker", "embedded:99999"], "is not a port number"),
        (["watch", "--site", "DC 1"], "site 'DC 1' is not valid"),
        (["watch", "--nope"], "unrecognized arguments: --nope"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = aidc(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_password_file_that_cannot_be_read_is_one_sentence() -> None:
    result = aidc("watch", "--broker", "mqtt://u@127.0.0.1:1", "--password-file", "/nonexistent")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "aidc: cannot read password file /nonexistent: No such file or directory"
    )


@pytest.mark.broker
def test_broker_serves_until_interrupted() -> None:
    port = free_port()
    broker = start("broker", "--port", str(port))
    try:
        wait_listening(port)
        broker.send_signal(signal.SIGINT)
        assert broker.wait(10) == 130, "128 + SIGINT, as shells expect"
    finally:
        broker.kill()
    out, err = broker.communicate()
    assert f"embedded MQTT 3.1.1 broker on mqtt://127.0.0.1:{port}" in out
    assert "Traceback" not in err


def test_broker_on_a_busy_port_is_one_sentence() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = aidc("broker", "--port", str(port))
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"aidc: 127.0.0.1:{port} is already in use; choose another --port"
    )


def test_spawned_broker_on_a_busy_port_is_a_broker_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with (
            pytest.raises(BrokerError, match=r"127.0.0.1:\d+ is already in use"),
            spawned_broker("embedded", port),
        ):
            pass


def test_missing_mosquitto_is_a_clear_broker_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aidc.runtime.brokers.MOSQUITTO_PATHS", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with (
        pytest.raises(BrokerError, match="mosquitto is not installed"),
        spawned_broker("mosquitto"),
    ):
        pass


@pytest.mark.broker
def test_watch_prints_decoded_messages_and_reports_malformed_ones() -> None:
    port = free_port()
    watch = start("watch", "--broker", f"embedded:{port}")
    try:
        wait_listening(port)
        time.sleep(0.5)
        for payload in [
            '{"op":"drain","id":"d-1","nodes":["r012-n03"],"grace_s":60}',
            '{"op":"drain","id":"d-2","nodes":["r012-n03"],"grace":60}',
        ]:
            subprocess.run(
                ["mosquitto_pub", "-p", str(port), "-t", "aidc/v1/dc1/ctl/cmd", "-m", payload],
                check=True,
            )
        time.sleep(1.0)
        os.killpg(watch.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        assert watch.wait(10) == 130
    finally:
        watch.kill()
    out, err = watch.communicate()
    (line,) = out.splitlines()
    shown = json.loads(line)
    assert shown["topic"] == "aidc/v1/dc1/ctl/cmd"
    assert shown["message"]["op"] == "drain"
    assert shown["message"]["grace_s"] == 60
    assert "aidc/v1/dc1/ctl/cmd: malformed command: " in err
    assert "`grace`" in err
    assert "Traceback" not in err
    assert not listening(port), "the embedded broker outlived `aidc watch`"


def children() -> list[int]:
    """Pids of this process's children."""
    return [
        int(pid)
        for task in Path(f"/proc/{os.getpid()}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]


@pytest.mark.broker
@pytest.mark.parametrize("kind", ["embedded", "mosquitto"])
def test_ctrl_c_is_left_to_the_command_not_its_broker(kind: str) -> None:
    before = set(children())
    with spawned_broker(kind):
        (broker,) = set(children()) - before
        assert os.getpgid(broker) != os.getpgrp()


@pytest.mark.broker
def test_spawned_broker_dies_with_its_parent() -> None:
    port = free_port()
    parent = start("watch", "--broker", f"embedded:{port}")
    try:
        wait_listening(port)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while listening(port):
            assert time.monotonic() < deadline, "the broker outlived its killed parent"
            time.sleep(0.1)
    finally:
        parent.kill()
        parent.communicate()


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("embedded", ("embedded", None)),
        ("mosquitto:1884", ("mosquitto", 1884)),
        ("mqtt://h:1", None),
    ],
)
def test_spawn_specs(spec: str, parsed: tuple[str, int | None] | None) -> None:
    assert parse_spawn_spec(spec) == parsed


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("mqtt://broker.lan", Endpoint("broker.lan", 1883)),
        ("mqtts://broker.lan", Endpoint("broker.lan", 8883, tls=True)),
        ("mqtt://ops@10.0.0.5:2883", Endpoint("10.0.0.5", 2883, username="ops")),
        ("mqtt://[::1]:1883", Endpoint("::1", 1883)),
    ],
)
def test_broker_urls(url: str, endpoint: Endpoint) -> None:
    assert parse_broker_url(url) == endpoint
    assert parse_broker_url(url).url.replace(":1883", "").replace(":8883", "") in url


def test_password_never_shows_in_repr_or_url() -> None:
    endpoint = parse_broker_url("mqtt://ops@h", password="hunter2")
    assert endpoint.password == "hunter2"
    assert "hunter2" not in repr(endpoint)
    assert "hunter2" not in endpoint.url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("tcp://h:1", "is not 'embedded', 'mosquitto'"),
        ("mqtt://h:70000", "is not valid"),
        ("mqtt://:1883", "has no host"),
        ("mqtt://h/topic", "must be only scheme"),
    ],
)
def test_bad_broker_urls(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_broker_url(url)


def test_password_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    from aidc.cli import build_parser
    from aidc.commands.options import broker_password

    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    parser = build_parser()
    os.environ["AIDC_MQTT_PASSWORD"] = "from-env"
    try:
        assert broker_password(parser.parse_args(["watch"])) == "from-env"
        assert broker_password(parser.parse_args(["watch", "--password-file", str(secret)])) == (
            "from-file"
        )
    finally:
        del os.environ["AIDC_MQTT_PASSWORD"]
    assert broker_password(parser.parse_args(["watch"])) is None
