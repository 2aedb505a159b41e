"""The console when the broker or the core is away: the header says so, the console keeps
retrying and reconnects, malformed messages are counted and dropped, and nothing crashes."""

import pytest

from aidc.runtime.brokers import free_port, spawned_broker
from protocols.codec import encode
from protocols.endpoint import Endpoint
from protocols.link import Link
from protocols.messages import CoreStatus
from tests.mqtt import running
from tests.tui.pilots import SIZE, until
from tui.app import AidcApp
from tui.widgets.header import OverviewHeader

pytestmark = pytest.mark.broker

SITE = "tui2"


def header(app: AidcApp) -> str:
    return app.screen.query_one(OverviewHeader).text.plain


async def test_the_header_follows_the_broker_and_the_core_going_and_coming_back() -> None:
    port = free_port()
    app = AidcApp(Endpoint("127.0.0.1", port, mqtt5=True), SITE)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: f"broker mqtt://127.0.0.1:{port} is unreachable" in header(app))
        assert "core ? unknown" in header(app)
        with spawned_broker("mosquitto", port) as endpoint:
            await until(pilot, lambda: "broker ● " in header(app), timeout=15)
            core = Link(endpoint, "tui-tests-fake-status")
            async with running(core):
                status = encode(CoreStatus(online=False, session=1))
                await core.publish(f"aidc/v1/{SITE}/core/status", status, qos=1, retain=True)
                await until(pilot, lambda: "core ✗ offline" in header(app))
                for payload in (b"\x00\xff", b"{}", b"[1,2]"):
                    await core.publish(f"aidc/v1/{SITE}/state/summary", payload, qos=1)
                await until(pilot, lambda: app.bridge.rejected >= 3)
                assert "malformed summary" in app.bridge.last_rejected
                # the rack view is decoded when the heatmap reads it
                await core.publish(f"aidc/v1/{SITE}/state/racks", b"\x00\xff", qos=1)
                await until(pilot, lambda: app.bridge.rejected >= 4)
                assert "malformed rack states" in app.bridge.last_rejected
        await until(pilot, lambda: "broker ✗ " in header(app), timeout=15)
        lost = f"broker mqtt://127.0.0.1:{port} unreachable; reconnecting"
        await until(pilot, lambda: app.bridge.picture.link.note == lost)  # aidc's words, no id
        with spawned_broker("mosquitto", port):
            await until(pilot, lambda: "broker ● " in header(app), timeout=20)
        assert app.is_running
        assert not [text for text, severity in app.said if severity == "error"]


async def test_a_command_with_no_core_to_answer_says_so() -> None:
    with spawned_broker("mosquitto") as endpoint:
        app = AidcApp(endpoint, SITE)
        app.bridge.requester.timeout_s = 0.5
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.bridge.picture.link.up)
            await app.run_command_line("uncordon r001-n01")
            await pilot.press("y")
            await until(pilot, lambda: app.said)
            text, severity = app.said[-1]
            assert severity == "error"
            assert text == (
                "Could not uncordon node r001-n01: no reply from the core of site tui2 within "
                "0.5 s (is `aidc core` running on this broker?)"
            )
