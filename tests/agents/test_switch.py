"""The switch emulator: port utilisation, bytes, ECN, PFC, drops, buffers and faults."""

import numpy as np
import numpy.typing as npt
import pytest

from agents.catalog import SPECTRUM_4
from agents.nic import PFC_ONSET_S
from agents.switch import BUFFER_IN_STORM, BUFFER_PER_CONGESTION, DROP_CONGESTION, SwitchBank
from protocols.columns import PortColumns, PortLoad, layout

COUNTERS = [n for n, c in layout(PortColumns).columns.items() if c.kind == "counter"]
PORT_BYTES_PER_S = 800e9 / 8


def bank(switches: int = 1, per_rack: int = 1, **kwargs: object) -> SwitchBank:
    rng = np.random.default_rng(5)
    return SwitchBank(SPECTRUM_4, switches, per_rack, SPECTRUM_4.ports, rng, **kwargs)  # type: ignore[arg-type]


def load(ports: SwitchBank, **fields: float | npt.NDArray[np.float64]) -> npt.NDArray[np.void]:
    out = np.zeros(ports.racks, layout(PortLoad).record_dtype(ports.rows))
    for name, value in fields.items():
        out[name] = value
    return out


def run(
    ports: SwitchBank, work: npt.NDArray[np.void] | None, seconds: float, dt: float = 1
) -> None:
    rng = np.random.default_rng(1)
    for _ in range(round(seconds / dt)):
        ports.step(work, dt, rng)


def test_idle_ports_are_up_and_quiet() -> None:
    ports = bank(switches=2)
    run(ports, None, 10)
    w = ports.wire
    assert w["utilization"].shape == (2, 64)
    assert ports.present().all()
    assert np.all(w["link_state"] == 1)
    assert not w["utilization"].any()
    assert not w["buffer_occupancy"].any()
    assert all(not w[name].any() for name in COUNTERS)


def test_a_network_rack_of_switches_is_one_block_of_nodes() -> None:
    ports = bank(switches=3, per_rack=16)
    assert ports.wire["node"][2].tolist() == [r // 64 for r in range(16 * 64)]
    assert ports.wire["port"][0].tolist() == [r % 64 for r in range(16 * 64)]
    ports.inject(1, np.arange(5 * 64, 6 * 64), "link_flap", {"port": 7})
    assert np.flatnonzero(ports.wire["link_state"] == 0).tolist() == [1 * 16 * 64 + 5 * 64 + 7]


def test_utilisation_and_bytes_follow_the_load() -> None:
    ports = bank()
    busy = np.linspace(0, 1.5, 64)
    run(ports, load(ports, busy=busy), 10)
    w = ports.wire
    carried = np.minimum(busy, 1)
    assert np.allclose(w["utilization"][0], 100 * carried, rtol=0.05, atol=0.01)
    assert np.all(w["utilization"][0] <= 100)
    assert np.allclose(w["tx_bytes"][0], PORT_BYTES_PER_S * 10 * carried, rtol=1e-6, atol=1)
    assert np.array_equal(w["rx_bytes"], w["tx_bytes"])
    assert not w["ecn_marked_packets"].any()


def test_congestion_marks_fills_buffers_and_pauses_once_persistent() -> None:
    ports = bank()
    congestion = np.linspace(0, 1, 64)
    work = load(ports, busy=1, congestion=congestion)
    run(ports, work, PFC_ONSET_S)
    w = ports.wire
    assert not w["tx_prio3_pause"].any()
    run(ports, work, 10)
    marks = w["ecn_marked_packets"][0].astype(float)
    assert marks[0] == 0
    assert np.all(np.diff(marks) > 0)
    occupancy = w["buffer_occupancy"][0]
    assert np.allclose(occupancy, 100 * BUFFER_PER_CONGESTION * congestion, rtol=0.25, atol=0.01)
    paused = w["tx_prio3_pause"][0]
    assert not paused[congestion <= 0.5].any()
    assert np.all(paused[congestion > 0.55] > 0)
    assert np.array_equal(w["rx_prio3_pause"], w["tx_prio3_pause"])
    drops = w["tx_drops"][0]
    assert not drops[congestion <= DROP_CONGESTION].any()
    assert drops[-1] > 0
    assert np.all(w["utilization"][0, congestion > 0.55] < 100)


def test_a_link_flap_drops_the_port_for_a_few_seconds() -> None:
    ports = bank()
    work = load(ports, busy=0.5)
    ports.inject(0, slice(None), "link_flap", {"port": 17})
    w = ports.wire
    assert w["link_state"][0, 17] == 0
    assert w["link_down_events"][0].sum() == w["link_down_events"][0, 17] == 1
    run(ports, work, 3)
    assert w["utilization"][0, 17] == 0
    assert w["tx_bytes"][0, 17] == 0
    assert w["utilization"][0, 16] > 45
    run(ports, work, 3)
    assert w["link_state"][0, 17] == 1
    assert w["utilization"][0, 17] > 45
    ports.reset(0, slice(None))
    assert not w["link_down_events"].any()
    assert not w["tx_bytes"].any()


def test_a_pause_storm_fills_the_buffer_and_collapses_the_port() -> None:
    ports = bank()
    work = load(ports, busy=0.9)
    ports.inject(0, [40], "pause_storm", {})
    run(ports, work, 5)
    w = ports.wire
    assert w["utilization"][0, 40] < 2
    assert w["buffer_occupancy"][0, 40] == pytest.approx(100 * BUFFER_IN_STORM, rel=0.2)
    assert w["tx_prio3_pause"][0, 40] > 100_000
    assert np.count_nonzero(w["tx_prio3_pause"]) == 1
    ports.clear(0, [40], None)
    run(ports, work, 1)
    assert w["utilization"][0, 40] > 85
    assert w["buffer_occupancy"][0, 40] == 0


def test_counters_never_decrease_over_random_steps_and_faults() -> None:
    ports = bank(switches=2)
    rng = np.random.default_rng(2)
    before = {n: ports.wire[n].copy() for n in COUNTERS}
    for i in range(200):
        work = load(
            ports,
            busy=rng.uniform(-0.5, 3, ports.shape),
            congestion=rng.uniform(0.3, 1.1, ports.shape),
        )
        ports.step(None if i % 11 == 0 else work, float(rng.uniform(0.1, 10)), rng)
        if i % 15 == 0:
            kind = str(rng.choice(["link_flap", "pause_storm"]))
            ports.inject(int(rng.integers(2)), [int(rng.integers(64))], kind, {})
        for name in COUNTERS:
            assert np.all(ports.wire[name] >= before[name]), name
            before[name] = ports.wire[name].copy()
        occupancy = ports.wire["buffer_occupancy"]
        assert np.all((occupancy >= 0) & (occupancy <= 100))
    assert all(before[name].any() for name in COUNTERS)


def test_bad_faults_are_refused() -> None:
    ports = bank()
    with pytest.raises(ValueError, match="port 64"):
        ports.inject(0, slice(None), "link_flap", {"port": 64})
    with pytest.raises(ValueError, match="cooling"):
        ports.inject(0, slice(None), "cooling", {})
    with pytest.raises(ValueError, match="rack"):
        ports.inject(1, slice(None), "pause_storm", {})
    assert np.all(ports.wire["link_state"] == 1)
