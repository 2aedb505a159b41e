"""The NIC emulator: bytes, DCQCN, ECN/CNP coupling, PFC, link flaps and pause storms."""

import numpy as np
import numpy.typing as npt
import pytest

from agents.catalog import CONNECTX_7
from agents.nic import (
    DCQCN_ALPHA,
    ECN_MARK_PROBABILITY,
    NIC_TEMP_IDLE_C,
    PAUSE_STORM_PAUSED,
    PFC_ONSET_S,
    ROCE_MTU_BYTES,
    NicBank,
)
from protocols.columns import NicColumns, NicLoad, layout

COUNTERS = [n for n, c in layout(NicColumns).columns.items() if c.kind == "counter"]
LINE_BYTES_PER_S = 400e9 / 8


def bank(racks: int = 1, nodes: int = 4, per_node: int = 8, **kwargs: object) -> NicBank:
    return NicBank(CONNECTX_7, racks, nodes, per_node, np.random.default_rng(3), **kwargs)  # type: ignore[arg-type]


def load(nics: NicBank, **fields: float | npt.NDArray[np.float64]) -> npt.NDArray[np.void]:
    out = np.zeros(nics.racks, layout(NicLoad).record_dtype(nics.rows))
    for name, value in fields.items():
        out[name] = value
    return out


def run(nics: NicBank, work: npt.NDArray[np.void] | None, seconds: float, dt: float = 1) -> None:
    rng = np.random.default_rng(1)
    for _ in range(round(seconds / dt)):
        nics.step(work, dt, rng)


def test_idle_nics_are_up_quiet_and_cool() -> None:
    nics = bank()
    run(nics, None, 60)
    w = nics.wire
    assert nics.present().all()
    assert np.all(w["link_state"] == 1)
    assert all(not w[name].any() for name in COUNTERS)
    assert np.allclose(w["temperature_c"], NIC_TEMP_IDLE_C, atol=2)
    assert w["port"][0].tolist() == [r % 8 for r in range(32)]


def test_bytes_integrate_the_rates_cut_by_congestion() -> None:
    nics = bank()
    congestion = np.zeros((1, 32))
    congestion[0, 16:] = 0.4
    run(nics, load(nics, tx_gbps=400, rx_gbps=100, congestion=congestion), 10, 0.5)
    w = nics.wire
    clear_tx = LINE_BYTES_PER_S * 10
    assert np.all(np.abs(w["tx_bytes"][0, :16] - clear_tx) <= 1)
    assert np.all(np.abs(w["rx_bytes"][0, :16] - clear_tx / 4) <= 1)
    assert np.allclose(w["tx_bytes"][0, 16:], clear_tx * (1 - DCQCN_ALPHA * 0.4), rtol=1e-7)
    assert not w["np_ecn_marked_roce_packets"][0, :16].any()
    marks = clear_tx / 4 * (1 - DCQCN_ALPHA * 0.4) / ROCE_MTU_BYTES * 0.4 * ECN_MARK_PROBABILITY
    assert np.allclose(w["np_ecn_marked_roce_packets"][0, 16:], marks, atol=1)
    assert np.array_equal(w["np_cnp_sent"], w["np_ecn_marked_roce_packets"])
    assert np.all(w["rp_cnp_handled"][0, 16:] > 3.9 * w["np_cnp_sent"][0, 16:])
    oos, packets = w["out_of_sequence"][0, 16:], w["rx_bytes"][0, 16:] / ROCE_MTU_BYTES
    assert np.all((oos > 0) & (oos < 1e-5 * packets))
    assert np.all(w["temperature_c"][0, :16] > NIC_TEMP_IDLE_C + 1)


def test_rates_beyond_line_rate_and_nan_are_not_believed() -> None:
    nics = bank()
    tx = np.full((1, 32), 1e6)
    tx[0, 1] = np.nan
    run(nics, load(nics, tx_gbps=tx, rx_gbps=-5, congestion=np.nan), 2)
    w = nics.wire
    assert w["tx_bytes"][0, 0] == LINE_BYTES_PER_S * 2
    assert w["tx_bytes"][0, 1] == 0
    assert not w["rx_bytes"].any()
    assert not w["np_cnp_sent"].any()


def test_cnps_sent_equal_cnps_handled_over_a_paired_fleet() -> None:
    nics = bank(racks=3)
    rng = np.random.default_rng(9)
    devices = nics.racks * nics.rows
    pairs = rng.permutation(devices).reshape(-1, 2)
    for _ in range(200):
        a_to_b, b_to_a = rng.uniform(0, 400, (2, len(pairs)))
        shared = rng.choice([0.0, 0.1, 0.6, 0.95], len(pairs))
        tx, rx, congestion = np.zeros((3, devices))
        tx[pairs[:, 0]], rx[pairs[:, 1]] = a_to_b, a_to_b
        tx[pairs[:, 1]], rx[pairs[:, 0]] = b_to_a, b_to_a
        congestion[pairs[:, 0]] = congestion[pairs[:, 1]] = shared
        work = load(
            nics,
            tx_gbps=tx.reshape(nics.shape),
            rx_gbps=rx.reshape(nics.shape),
            congestion=congestion.reshape(nics.shape),
        )
        nics.step(work, float(rng.uniform(0.1, 10)), rng)
    sent = int(nics.wire["np_cnp_sent"].sum())
    handled = int(nics.wire["rp_cnp_handled"].sum())
    assert sent > 1000 * devices
    assert abs(sent - handled) <= devices
    assert nics.wire["rx_prio3_pause"].any(), "persistent congestion paused some"


def test_cnps_balance_around_a_ring_with_shared_congestion() -> None:
    nics = bank(racks=2)
    rng = np.random.default_rng(4)
    for _ in range(100):
        rates = rng.uniform(0, 400, nics.shape)
        received = np.roll(rates.ravel(), 1).reshape(nics.shape)
        work = load(nics, tx_gbps=rates, rx_gbps=received, congestion=rng.uniform(0, 0.4))
        nics.step(work, 1.0, rng)
    sent, handled = nics.wire["np_cnp_sent"], nics.wire["rp_cnp_handled"]
    assert abs(int(sent.sum()) - int(handled.sum())) <= nics.racks * nics.rows
    assert not np.array_equal(sent, handled), "per NIC they differ: only the totals balance"


def test_persistent_congestion_triggers_pfc_and_relief_stops_it() -> None:
    nics = bank()
    work = load(nics, tx_gbps=300, rx_gbps=300, congestion=0.9)
    relief = load(nics, tx_gbps=300, rx_gbps=300, congestion=0.3)
    for _ in range(3):
        run(nics, work, PFC_ONSET_S - 1)
        run(nics, relief, 1)
    run(nics, work, PFC_ONSET_S)
    w = nics.wire
    assert not w["rx_prio3_pause"].any(), "not yet persistent"
    run(nics, work, 5)
    for name in ("rx_prio3_pause", "tx_prio3_pause"):
        assert np.all(w[name] > 0)
        assert np.all(w[f"{name}_duration"] > 0)
        assert np.all(w[f"{name}_duration"] < 5e6)
    paused = w["rx_prio3_pause_duration"].copy()
    run(nics, relief, 5)
    assert np.array_equal(w["rx_prio3_pause_duration"], paused)


def test_a_link_flap_takes_the_link_down_for_a_few_seconds() -> None:
    nics = bank()
    work = load(nics, tx_gbps=200, rx_gbps=200)
    run(nics, work, 2)
    node1 = np.arange(8, 16)
    nics.inject(0, node1, "link_flap", {"nic": 2, "down_s": 4})
    w = nics.wire
    assert w["link_state"][0, 10] == 0
    assert w["link_down_events_phy"][0].tolist() == [int(r == 10) for r in range(32)]
    sent = w["tx_bytes"][0].copy()
    run(nics, work, 3)
    assert w["link_state"][0, 10] == 0
    assert w["tx_bytes"][0, 10] == sent[10], "no traffic while down"
    assert np.all(np.delete(w["tx_bytes"][0] - sent, 10) > 0)
    run(nics, work, 1)
    assert w["link_state"][0, 10] == 1
    run(nics, work, 1)
    assert w["tx_bytes"][0, 10] > sent[10]
    assert w["link_down_events_phy"][0, 10] == 1
    assert np.all(w["link_state"] == 1)


def test_a_cleared_flap_brings_the_link_straight_back() -> None:
    nics = bank()
    nics.inject(0, slice(None), "link_flap", {"down_s": 600})
    run(nics, None, 5)
    assert not nics.wire["link_state"].any()
    nics.clear(0, slice(0, 8), "link_flap")
    assert np.all(nics.wire["link_state"][0, :8] == 1)
    run(nics, None, 1)
    assert nics.wire["link_state"][0].tolist() == [1] * 8 + [0] * 24


def test_a_pause_storm_pauses_nearly_always_and_collapses_throughput() -> None:
    nics = bank()
    work = load(nics, tx_gbps=400, rx_gbps=400)
    nics.inject(0, [3], "pause_storm", {})
    run(nics, work, 10)
    w = nics.wire
    assert w["tx_bytes"][0, 3] < 0.02 * w["tx_bytes"][0, 4]
    assert w["rx_prio3_pause_duration"][0, 3] == pytest.approx(PAUSE_STORM_PAUSED * 10e6)
    assert w["tx_prio3_pause"][0, 3] > 100_000
    assert np.count_nonzero(w["tx_prio3_pause"]) == 1
    nics.clear(0, [3], "pause_storm")
    before = w["tx_prio3_pause"][0, 3]
    run(nics, work, 10)
    assert w["tx_prio3_pause"][0, 3] == before
    nics.inject(0, [3], "pause_storm", {})
    run(nics, work, 1)
    nics.reset(0, [3])
    assert all(w[name][0, 3] == 0 for name in COUNTERS)
    run(nics, work, 1)
    assert w["tx_bytes"][0, 3] == LINE_BYTES_PER_S, "one clean second since the reset"


def test_counters_never_decrease_over_random_steps_and_faults() -> None:
    nics = bank(racks=2)
    rng = np.random.default_rng(8)
    before = {n: nics.wire[n].copy() for n in COUNTERS}
    for i in range(300):
        shape = nics.shape
        work = load(
            nics,
            tx_gbps=rng.uniform(-50, 500, shape),
            rx_gbps=rng.uniform(0, 400, shape),
            congestion=rng.uniform(0, 1.2, shape),
        )
        nics.step(None if i % 9 == 0 else work, float(rng.uniform(0.1, 10)), rng)
        if i % 20 == 0:
            kind = str(rng.choice(["link_flap", "pause_storm"]))
            nics.inject(int(rng.integers(2)), [int(rng.integers(32))], kind, {})
        if i % 50 == 0:
            nics.clear(int(rng.integers(2)), slice(None), None)
        for name in COUNTERS:
            assert np.all(nics.wire[name] >= before[name]), name
            before[name] = nics.wire[name].copy()
    assert all(before[name].any() for name in COUNTERS if name != "rx_discards_phy")


def test_random_link_flaps_follow_their_rate() -> None:
    nics = bank(racks=10, fault_rates={"link_flap": 36.0})
    run(nics, None, 100)
    flaps = int(nics.wire["link_down_events_phy"].sum())
    expected = 36.0 * 100 / 3600 * 320
    assert 0.7 * expected < flaps < 1.3 * expected


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("xid", {"code": 79}),
        ("link_flap", {"down_s": -1}),
        ("link_flap", {"port": 1}),
        ("link_flap", {"nic": 9}),
        ("pause_storm", {"severity": 1.0}),
    ],
)
def test_bad_faults_are_refused(kind: str, params: dict[str, int | float | str | bool]) -> None:
    nics = bank()
    with pytest.raises(ValueError, match=r"^[^\n]+$"):
        nics.inject(0, slice(None), kind, params)
    assert np.all(nics.wire["link_state"] == 1)
    assert not nics.storm.any()
