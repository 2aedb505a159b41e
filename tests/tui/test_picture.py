"""The console's picture of a site: racks in id order, the core's liveness as the header says
it, events read back without duplicates, big views decoded only when read."""

from protocols.codec import encode
from protocols.messages import CoreStatus, Event, Summary
from tests.tui.constructed import racks
from tui.picture import STALE_MIN_S, Racks, SitePicture
from tui.widgets.header import overview


def test_racks_are_in_id_order_and_the_sort_is_kept_while_the_racks_stay() -> None:
    message = racks(3)  # r001, r002, r003 and net01, in that order on the wire
    first = Racks.of(message)
    assert first.names == ["net01", "r001", "r002", "r003"]
    assert first.columns["devices"].tolist() == [0, 72, 72, 72]
    again = Racks.of(message, first)
    assert again.order is first.order
    assert Racks.of(racks(4), first).names == ["net01", "r001", "r002", "r003", "r004"]


def test_the_core_is_online_offline_stalled_or_unknown() -> None:
    picture = SitePicture("f1")
    assert picture.core_state() == "unknown"
    picture.link.up = True
    picture.apply(CoreStatus(online=True, session=1))
    assert picture.core_state() == "online"
    picture.apply(Summary(time=1.0, tick=1, speed=1.0))
    assert picture.core_state(now=picture.summary_at + 1) == "online"
    assert picture.core_state(now=picture.summary_at + STALE_MIN_S + 1) == "stalled"
    picture.apply(CoreStatus(online=False, session=1))
    assert picture.core_state() == "offline"
    picture.link.up = False
    assert picture.core_state() == "unknown"


def test_events_read_back_go_before_the_live_ones_once() -> None:
    picture = SitePicture("f1")
    old, live = (Event(t, "info", "control", "command", f"e{t}") for t in (1.0, 2.0))
    picture.add_events([live])
    picture.backfill_events([live, old])  # newest first, as the core answers
    picture.backfill_events([live, old])
    assert list(picture.events) == [old, live]
    assert picture.events_total == 2


def test_the_rack_view_is_decoded_when_read_and_a_bad_one_is_counted() -> None:
    picture = SitePicture("f1")
    picture.hold("racks", "aidc/v1/f1/state/racks", encode(racks(2)))
    assert picture.rejected == 0
    racks_now = picture.racks
    assert racks_now is not None
    assert len(racks_now) == 3
    picture.hold("racks", "aidc/v1/f1/state/racks", b"\x00\xff")
    assert picture.racks is racks_now  # the last good view stays
    assert picture.rejected == 1
    assert picture.last_rejected.startswith("aidc/v1/f1/state/racks: malformed rack states")


def test_the_header_counts_goodput_against_finished_requests_not_arrivals() -> None:
    picture = SitePicture("f1")
    # a tick that finishes the backlog: more done than arrived, most of it on time
    picture.apply(Summary(1.0, 1, 1.0, requests_per_s=54.0, completed_per_s=60.0, goodput_rps=55.7))
    shown = overview(picture, "mqtt://127.0.0.1:1883", read_only=False).plain
    assert "SLO 93%  goodput 55.7/60 req/s" in shown
