"""The link over TLS with a CA file and a password, against a real mosquitto that demands both."""

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aidc.runtime.brokers import free_port
from protocols.endpoint import Endpoint, parse_broker_url
from protocols.link import Backoff, Link
from tests.mqtt import running, wait_listening

USER, PASSWORD = "operator", "s3cret-pw"
ROOT = Path(__file__).resolve().parent.parent


def openssl(command: str, cwd: Path) -> None:
    subprocess.run(["openssl", *command.split()], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """mosquitto with TLS (a test CA) and a password file, no anonymous clients."""
    tmp = tmp_path_factory.mktemp("tls")
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 "
        "-subj /CN=aidc-test-ca",
        tmp,
    )
    openssl(
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost", tmp
    )
    (tmp / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out server.crt -days 2 -extfile san.ext",
        tmp,
    )
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(tmp / "passwd"), USER, PASSWORD],
        check=True,
        capture_output=True,
    )
    port = free_port()
    (tmp / "mosquitto.conf").write_text(
        ("user root\n" if os.geteuid() == 0 else "")  # else it drops to a user who can't read tmp
        + f"listener {port} 127.0.0.1\ncafile {tmp}/ca.crt\ncertfile {tmp}/server.crt\n"
        f"keyfile {tmp}/server.key\npassword_file {tmp}/passwd\nallow_anonymous false\n"
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(tmp / "mosquitto.conf")])
    try:
        wait_listening(port)
        yield port, tmp / "ca.crt"
    finally:
        broker.terminate()
        broker.wait(5)


async def test_tls_and_password_connect(secure_broker: tuple[int, Path]) -> None:
    port, ca = secure_broker
    endpoint = parse_broker_url(
        f"mqtts://{USER}@localhost:{port}", password=PASSWORD, ca_file=str(ca)
    )
    topic = "aidc/v1/dc1/core/status"
    subscriber = Link(endpoint, "secure-sub", subscriptions=[(topic, 1)])
    publisher = Link(endpoint, "secure-pub")
    async with running(subscriber) as inbox, running(publisher):
        await publisher.publish(topic, b"over tls", qos=1)
        (message,) = await inbox.wait_for(1)
    assert message.payload == b"over tls"


@pytest.mark.parametrize(
    ("password", "use_ca", "reason"),
    [
        ("wrong", True, "refused the connection (not authorized); retrying"),
        (PASSWORD, False, "failed (certificate verify failed: self-signed certificate in"),
    ],
)
async def test_refused_connections_say_why_and_keep_trying(
    secure_broker: tuple[int, Path],
    caplog: pytest.LogCaptureFixture,
    password: str,
    use_ca: bool,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="aidc.link")
    port, ca = secure_broker
    endpoint = Endpoint(
        "localhost",
        port,
        tls=True,
        username=USER,
        password=password,
        ca_file=str(ca) if use_ca else None,
    )
    link = Link(endpoint, "refused", backoff=Backoff(0.05, 0.2))
    task = asyncio.create_task(link.run(lambda message: asyncio.sleep(0)))
    await asyncio.sleep(1.5)
    assert not task.done()
    assert not link.connected.is_set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    (warning,) = [r.getMessage() for r in caplog.records]
    assert reason in warning.lower()


def test_watch_takes_the_password_from_the_environment(secure_broker: tuple[int, Path]) -> None:
    port, ca = secure_broker
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aidc",
            "watch",
            "--broker",
            f"mqtts://{USER}@localhost:{port}",
            "--ca-file",
            str(ca),
        ],
        cwd=ROOT,
        env={**os.environ, "AIDC_MQTT_PASSWORD": PASSWORD},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stderr is not None
        watch.stderr.readline()
        assert "connected to mqtts://operator@localhost:" in watch.stderr.readline()
    finally:
        watch.terminate()
        watch.wait(10)
