"""The back-end fabric: the traffic serving puts on each NIC and leaf port, the congestion it
causes (fed back to the agents as ECN/CNP/PFC pressure), and the fabric view for dashboards.

A GPU's NIC carries its replica's KV-cache streaming (tokens generated times the KV bytes of a
token, split over the replica's GPUs, as prefix caching and disaggregated serving move it)
and, while the replica warms up, its share of the weights. Half of a leaf's traffic crosses to
other leaves through its uplinks; a leaf whose uplinks run above `ECN_THRESHOLD` marks, and
its NICs and ports see the congestion.
"""

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocols.messages import FabricState, PortState, SwitchState
from sim.fleet_state import FleetState
from sim.pools import LOAD_BYTES_PER_S_PER_DEVICE, WARMING, Pools

F64 = npt.NDArray[np.float64]

CROSS_LEAF_SHARE = 0.5
"""Share of a leaf's NIC traffic that leaves through its uplinks."""
ECN_THRESHOLD = 0.8
"""Uplink utilisation from which queues build and packets get ECN-marked."""
HOTTEST_PORTS = 10
PORT_GBPS = 800.0
"""Spectrum-4 port speed."""
UPLINK_FROM_PORT = 32
"""A leaf's ports from this one up face the spines."""


@dataclass
class FabricLoad:
    """What the core assigns to the network for one tick."""

    nic_gbps: F64
    """Per NIC row, each way."""
    nic_congestion: F64
    port_busy: F64
    """Per switch-port row, 0..1 of the port's speed."""
    port_congestion: F64


class Fabric:
    """Maps NICs to the leaf ports they are cabled to and works out the load on both."""

    def __init__(self, fleet: FleetState, pools: Pools) -> None:
        self.fleet, self.pools = fleet, pools
        self._last: dict[str, F64] = {}
        self._last_time = 0.0
        self._port_rows: dict[str, int] = {}
        """Switch-port rows by the name a NIC's peer gives them (`leaf01/17`)."""
        self._cabling = np.zeros(0, np.int64)

    def _nic_ports(self) -> npt.NDArray[np.int64]:
        """The switch-port row each NIC is cabled to (-1: none). Births only add rows, so
        only new ports are named, only new NICs looked up, and the uncabled NICs again once
        new ports came."""
        nics, ports = self.fleet.devices["nic"].table, self.fleet.devices["port"].table
        names, peers = self.fleet.nodes.ids, self.fleet.peers.ids
        known = len(self._port_rows)
        fresh = zip(ports["node"][known:].tolist(), ports["slot"][known:].tolist(), strict=True)
        for row, (node, slot) in enumerate(fresh, start=known):
            self._port_rows[f"{names[node]}/{slot}"] = row
        cabled = self._cabling.size
        stale = np.flatnonzero(self._cabling < 0) if len(ports) > known else np.zeros(0, np.intp)
        look_up = np.concatenate([stale, np.arange(cabled, len(nics))])
        if look_up.size:
            self._cabling = np.resize(self._cabling, len(nics))
            self._cabling[look_up] = [
                self._port_rows.get(peers[p], -1) for p in nics["peer"][look_up].tolist()
            ]
        return self._cabling

    def load(self, tokens: F64, dt: float) -> FabricLoad:
        """The network load of the last tick, from each replica's generated `tokens`."""
        nics = self.fleet.devices["nic"].table
        gpus = self.fleet.devices["gpu"].table
        ports = self.fleet.devices["port"].table
        nic_gbps = np.zeros(len(nics))
        owner = self.pools.owners("gpu")[: len(gpus)]
        held = owner >= 0
        if held.any():
            pools = list(self.pools.pools.values())
            of_pool = self.pools.replicas["pool"]
            kv_bytes = np.array(
                [p.perf.kv_bytes_per_token / p.spec.tensor_parallel for p in pools]
            )[of_pool]
            per_gpu_bps = tokens / max(dt, 1e-9) * kv_bytes
            warming = self.pools.replicas["state"] == WARMING
            per_gpu_bps = per_gpu_bps + np.where(warming, LOAD_BYTES_PER_S_PER_DEVICE, 0.0)
            gpu_gbps = np.where(held, per_gpu_bps[np.maximum(owner, 0)], 0.0) * 8 / 1e9
            nic_of_gpu = self.fleet.nodes["first_nic"][gpus["node"]] + gpus["slot"]
            has_nic = gpus["slot"] < self.fleet.nodes["nics"][gpus["node"]]
            np.add.at(nic_gbps, nic_of_gpu[has_nic], gpu_gbps[has_nic])
        port_busy = np.zeros(len(ports))
        port_congestion = np.zeros(len(ports))
        nic_congestion = np.zeros(len(nics))
        if len(ports) and len(nics):
            nic_port = self._nic_ports()
            cabled = nic_port >= 0
            np.add.at(port_busy, nic_port[cabled], nic_gbps[cabled] / PORT_GBPS)
            leaf = ports["node"]
            up = ports["slot"] >= UPLINK_FROM_PORT
            down = np.bincount(leaf, port_busy * PORT_GBPS, minlength=len(self.fleet.nodes))
            uplinks = np.bincount(leaf, up, minlength=len(self.fleet.nodes))
            uplink_util = CROSS_LEAF_SHARE * down / np.maximum(uplinks * PORT_GBPS, 1e-9)
            congestion = np.clip((uplink_util - ECN_THRESHOLD) / (1 - ECN_THRESHOLD), 0.0, 1.0)
            port_busy = np.where(up, np.minimum(uplink_util[leaf], 1.0), np.minimum(port_busy, 1.0))
            port_congestion = congestion[leaf]
            nic_congestion[cabled] = congestion[ports["node"][nic_port[cabled]]]
        return FabricLoad(nic_gbps, nic_congestion, port_busy, port_congestion)

    def view(self, now: float) -> FabricState:
        """Every switch's health and load, and the hottest ports, from port telemetry."""
        ports = self.fleet.devices["port"]
        table = ports.table
        elapsed = max(now - self._last_time, 1e-9)
        rates = {}
        for name in ("ecn_marked_packets", "tx_prio3_pause", "tx_drops"):
            counter = table["counters"][ports.counters.index(name)].astype(np.float64)
            last = self._last.get(name)
            grown = (
                counter - last
                if last is not None and last.shape == counter.shape
                else np.zeros_like(counter)
            )
            rates[name] = np.maximum(grown, 0.0) / elapsed
            self._last[name] = counter
        self._last_time = now
        utilization = ports.gauge("utilization")
        link = ports.gauge("link_state")
        flaps = table["counters"][ports.counters.index("link_down_events")]
        nodes, switch_of = np.unique(table["node"], return_inverse=True)
        per_switch = functools.partial(np.bincount, switch_of, minlength=len(nodes))
        hottest_port = np.zeros(len(nodes))
        np.maximum.at(hottest_port, switch_of, utilization.astype(np.float64))
        columns = zip(
            nodes.tolist(),
            per_switch(link > 0).tolist(),
            per_switch().tolist(),
            hottest_port.tolist(),
            per_switch(rates["ecn_marked_packets"]).tolist(),
            per_switch(rates["tx_prio3_pause"]).tolist(),
            per_switch(rates["tx_drops"]).tolist(),
            per_switch(flaps.astype(np.float64)).tolist(),
            strict=True,
        )
        switches = [
            SwitchState(
                self.fleet.nodes.ids[node], int(up), int(ports), top, ecn, pause, drops, int(f)
            )
            for node, up, ports, top, ecn, pause, drops, f in columns
        ]
        hottest = np.argsort(-utilization)[:HOTTEST_PORTS]
        peers = self.fleet.peers.ids
        return FabricState(
            now,
            switches,
            [
                PortState(
                    self.fleet.nodes.ids[int(table["node"][p])],
                    int(table["slot"][p]),
                    float(utilization[p]),
                    float(rates["ecn_marked_packets"][p]),
                    float(rates["tx_prio3_pause"][p]),
                    peers[int(table["peer"][p])],
                )
                for p in hottest.tolist()
            ],
        )
