"""The control plane: cordon, drain (with its refusal and deadline), scale, route, faults,
idempotent ids and a restart from the journal."""

from pathlib import Path

from protocols.commands import (
    AgentCommand,
    ClearFault,
    Cordon,
    Drain,
    FaultKind,
    InjectFault,
    Route,
    Scale,
    Uncordon,
)
from protocols.messages import Birth, NodeInventory, PortInfo
from sim.control import ControlPlane
from sim.fleet_state import FleetState
from sim.journal import Journal
from sim.pools import READY, Pools, PoolSpec
from tests.sim.test_pools import H100, hgx_rack

SPEC = PoolSpec(
    "llama-70b-h100", "llama-3-1-70b", H100, tensor_parallel=8, replicas=2, min_available=2
)


def site(
    journal: Journal | None = None, nodes: int = 3
) -> tuple[ControlPlane, list[tuple[str, AgentCommand]]]:
    fleet = FleetState()
    fleet.on_birth(hgx_rack("r1", nodes), 0.0)
    pools = Pools(fleet)
    pools.add(SPEC)
    sent: list[tuple[str, AgentCommand]] = []
    control = ControlPlane(
        fleet, pools, journal or Journal(":memory:"), lambda a, c: sent.append((a, c))
    )
    control.tick(0.0)
    warm = pools.pools[SPEC.pool].warm_up_s
    fleet.nodes["seen"][:] = warm
    control.tick(warm)
    return control, sent


def now(control: ControlPlane) -> float:
    return control.pools.pools[SPEC.pool].warm_up_s


def test_cordon_is_applied_once_per_id() -> None:
    control, _ = site()
    t = now(control)
    first = control.handle(Cordon(id="c1", nodes=["r1-n2"]), t)
    assert first.ok
    assert first.result == {"nodes": {"r1-n2": "cordoned"}}
    assert control.handle(Cordon(id="c1", nodes=["r1-n2"]), t) == first
    conflict = control.handle(Cordon(id="c1", nodes=["r1-n0"]), t)
    assert not conflict.ok
    assert "c1" in (conflict.error or "")
    assert control.handle(Uncordon(id="u1", nodes=["r1-n2"]), t).result == {
        "nodes": {"r1-n2": "ready"}
    }


def test_unknown_nodes_are_named() -> None:
    control, _ = site()
    reply = control.handle(Drain(id="d0", nodes=["r1-n0", "r9-n9"]), now(control))
    assert not reply.ok
    assert reply.error == "unknown node r9-n9"


def test_a_drain_below_minimum_available_is_refused_unless_forced() -> None:
    control, _ = site()
    t = now(control)
    node = control.fleet.nodes.ids[
        control.fleet.devices["gpu"].table["node"][control.pools.devices[0][0]]
    ]
    refused = control.handle(Drain(id="d1", nodes=[node]), t)
    assert not refused.ok
    assert refused.error == (
        "drain would leave pool llama-70b-h100 with 1 of its 2 minimum available replicas "
        "(use force)"
    )
    forced = control.handle(Drain(id="d2", nodes=[node], grace_s=30, force=True), t)
    assert forced.ok
    assert forced.result == {"nodes": {node: "draining"}}


def test_a_drain_moves_the_replica_and_the_node_ends_drained() -> None:
    control, _ = site()
    t = now(control)
    replica = control.pools.pools[SPEC.pool].replicas[0]
    node = control.fleet.nodes.ids[
        control.fleet.devices["gpu"].table["node"][control.pools.devices[replica][0]]
    ]
    control.pools.state.running[replica] = 5.0
    assert control.handle(Drain(id="d3", nodes=[node], grace_s=60, force=True), t).ok
    happened, _ = control.tick(t + 1)
    assert control.intents[node].state == "draining"
    assert len(control.pools.pools[SPEC.pool].replicas) == 3, "a replacement is placed elsewhere"
    others = [r for r in control.pools.pools[SPEC.pool].replicas if r != replica]
    waiting_before = sum(control.pools.state.waiting[r] for r in others)
    control.tick(t + 61)
    assert control.intents[node].state == "drained"
    waiting_after = sum(control.pools.state.waiting[r] for r in others)
    assert waiting_after == waiting_before + 5.0, "in-flight requests are re-routed, not lost"
    assert control.lost == 0.0
    assert replica not in control.pools.pools[SPEC.pool].replicas
    assert "node" not in " ".join(happened)
    control.fleet.nodes["seen"][:] = t + 62
    assert control.handle(Uncordon(id="u2", nodes=[node]), t + 62).result == {
        "nodes": {node: "ready"}
    }


def test_nodes_without_telemetry_for_three_intervals_are_lost() -> None:
    control, _ = site()
    t = now(control)
    states = control.node_states(t + 2.9)
    assert set(states.tolist()) == {0}
    assert set(control.node_states(t + 3.1).tolist()) == {4}


def test_scale_beyond_room_is_partial_and_beyond_the_site_is_refused() -> None:
    control, _ = site()
    t = now(control)
    control.handle(Cordon(id="c1", nodes=["r1-n2"]), t)
    reply = control.handle(Scale(id="s1", pool=SPEC.pool, replicas=3), t)
    assert reply.ok
    assert reply.result is not None
    assert reply.result["desired"] == 3
    assert (
        reply.result["partial"]
        == "pool llama-70b-h100: no room for 1 more replica(s) of 8 x NVIDIA H100 80GB HBM3"
    )
    reply = control.handle(Scale(id="s2", pool=SPEC.pool, replicas=10000), t)
    assert (reply.ok, reply.error) == (
        False,
        "pool llama-70b-h100 can never hold 10000 replicas: the site's 24 NVIDIA H100 80GB HBM3"
        " GPUs hold at most 3 of 8",
    )
    assert control.pools.pools[SPEC.pool].desired == 3, "a refused scale changes nothing"
    assert not control.handle(Scale(id="s3", pool="nope", replicas=1), t).ok


def test_routes_must_name_pools_of_their_model() -> None:
    control, _ = site()
    t = now(control)
    assert control.handle(Route(id="r1", model="llama-3-1-70b", weights={SPEC.pool: 100}), t).ok
    wrong = control.handle(Route(id="r2", model="llama-3-1-8b", weights={SPEC.pool: 100}), t)
    assert wrong.error == "pool llama-70b-h100 does not serve model llama-3-1-8b"
    assert (
        control.handle(Route(id="r3", model="llama-3-1-70b", weights={"x": 100}), t).error
        == "unknown pool x"
    )


def test_faults_go_to_the_agent_of_the_node() -> None:
    control, sent = site()
    fault = InjectFault(id="f1", target="r1-n1", kind="xid", params={"code": 79, "gpu": 0})
    assert control.handle(fault, now(control)).result == {"sent_to": "r1"}
    assert sent == [("r1", fault)]


def test_a_fault_its_target_cannot_take_is_refused_and_not_sent() -> None:
    control, sent = site()
    ports = [PortInfo(p, 800.0, f"r1-n0/nic{p}") for p in range(4)]
    leaf = NodeInventory("leaf01", "switch", "SN5600", ports=ports)
    control.fleet.on_birth(Birth("net01", "net01", 1, 0.0, 1.0, [leaf]), 0.0)
    t = now(control)
    refused: dict[tuple[str, FaultKind, tuple[str, int]], str] = {
        ("leaf01", "link_flap", ("nic", 2)): "link_flap on leaf01 takes down_s=, port=, not nic=",
        ("leaf01", "xid", ("code", 79)): "xid faults hit GPUs, and leaf01 has none",
        ("leaf01", "link_flap", ("port", 4)): "port 4 is not one of leaf01's ports 0..3",
        ("r1-n1", "lpu_chip", ("chip", 0)): "lpu_chip faults hit LPU chips, and r1-n1 has none",
        ("r1-n1", "xid", ("gpu", 8)): "gpu 8 is not one of r1-n1's GPUs 0..7",
        (
            "r1-n1",
            "link_flap",
            ("nic", 1),
        ): "link_flap faults hit NICs or ports, and r1-n1 has none",
        ("r1-n1", "xid", ("nic", 1)): "xid on r1-n1 takes code=, gpu=, not nic=",
    }
    for (target, kind, (name, value)), error in refused.items():
        fault = InjectFault(
            id=f"f-{target}-{kind}-{name}", target=target, kind=kind, params={name: value}
        )
        reply = control.handle(fault, t)
        assert (reply.ok, reply.error) == (False, error)
    reply = control.handle(ClearFault(id="c1", target="leaf01", kind="cooling"), t)
    assert reply.error == "cooling faults hit GPUs, and leaf01 has none"
    assert sent == []
    fits = InjectFault(id="f1", target="leaf01", kind="link_flap", params={"port": 3})
    assert control.handle(fits, t).ok
    assert sent == [("net01", fits)]


def test_desired_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    control, _ = site(Journal(path))
    t = now(control)
    control.handle(Cordon(id="c9", nodes=["r1-n0"]), t)
    control.handle(Route(id="r9", model="llama-3-1-70b", weights={SPEC.pool: 100}), t)
    control.handle(Scale(id="s9", pool=SPEC.pool, replicas=1), t)
    control.journal.close()
    again, _ = site(Journal(path))
    assert again.intents["r1-n0"].state == "cordoned"
    assert again.routes == {"llama-3-1-70b": {SPEC.pool: 100.0}}
    assert again.pools.pools[SPEC.pool].desired == 1
    assert again.handle(Cordon(id="c9", nodes=["r1-n0"]), t).result == {
        "nodes": {"r1-n0": "cordoned"}
    }


def test_ready_replicas_after_warm_up() -> None:
    control, _ = site()
    states = control.pools.replicas["state"][control.pools.pools[SPEC.pool].replicas]
    assert list(states) == [READY, READY]


def test_a_switch_is_not_cordoned_or_drained_but_can_be_released() -> None:
    control, _ = site()
    leaf = NodeInventory("leaf01", "switch", "SN5600", ports=[PortInfo(0, 800.0, "r1-n0/nic0")])
    control.fleet.on_birth(Birth("net01", "net01", 1, 0.0, 1.0, [leaf]), 0.0)
    t = now(control)
    for command in (Cordon(id="c1", nodes=["leaf01"]), Drain(id="d1", nodes=["r1-n0", "leaf01"])):
        reply = control.handle(command, t)
        assert not reply.ok
        assert reply.error is not None
        assert reply.error.startswith(f"leaf01 is a switch: {command.__struct_config__.tag} ")
    assert "leaf01" not in control.intents
    assert "r1-n0" not in control.intents, "a refused command changes nothing"
    assert control.handle(Uncordon(id="u1", nodes=["leaf01"]), t).ok
