"""Racks of one shape, stepped together: their device banks, loads and inventories."""

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agents.bank import DeviceBank
from agents.catalog import SPECTRUM_4, RackKind
from agents.gpu import GpuBank
from agents.lpu import LpuBank
from agents.nic import NicBank
from agents.switch import SwitchBank
from agents.topology import Rack, Site
from protocols.columns import (
    Columns,
    GpuColumns,
    GpuLoad,
    LpuColumns,
    LpuLoad,
    NicColumns,
    NicLoad,
    PortColumns,
    PortLoad,
    layout,
)
from protocols.messages import GpuInfo, LpuInfo, NicInfo, NodeInventory, PortInfo


@dataclass
class Devices:
    """One kind of device in a group: the bank, its wire and load blocks, rows per node."""

    name: str
    """The Telemetry/Assignment field: gpu, nic, port or lpu."""
    bank: DeviceBank
    block: type[Columns]
    load_block: type[Columns]
    per_node: int
    load: npt.NDArray[np.void] = field(init=False)
    present: npt.NDArray[np.bool_] = field(init=False)
    """Which devices report, as of the last step."""
    all_present: npt.NDArray[np.bool_] = field(init=False)
    """Racks whose every device reports, as of the last step."""

    def __post_init__(self) -> None:
        rows = self.bank.wire.dtype[0].shape[0]
        self.load = np.zeros(len(self.bank.wire), layout(self.load_block).record_dtype(rows))
        self.idle(slice(None), slice(None))
        self.refresh()

    def idle(self, racks: int | slice, rows: slice) -> None:
        """Set the load of some devices to what they do with no core assigning."""
        for name in self.load.dtype.names or ():
            self.load[racks][name][..., rows] = self.bank.idle_load.get(name, 0.0)

    def refresh(self) -> None:
        """Note which devices report now."""
        self.present = self.bank.present()
        self.all_present = np.asarray(self.present.all(axis=1))

    def rows(self, node: int) -> slice:
        """The rows of one node's devices."""
        return slice(node * self.per_node, (node + 1) * self.per_node)


@dataclass
class Group:
    """Every rack of one shape in this process, stepped with one numpy call per field."""

    racks: list[str]
    nodes: list[list[str]]
    """Node ids of each rack."""
    inventories: list[list[NodeInventory]]
    devices: list[Devices]

    def step(self, dt: float, rng: np.random.Generator) -> None:
        """Advance every device by `dt` seconds under its current load."""
        for device in self.devices:
            device.bank.step(device.load, dt, rng)
            device.refresh()

    def idle(self, rack: int, first_node: int, nodes: int) -> None:
        """Forget the assigned load of some nodes of a rack: with no core, devices idle."""
        for device in self.devices:
            device.idle(
                rack, slice(first_node * device.per_node, (first_node + nodes) * device.per_node)
            )


FaultRates = Mapping[str, float]
"""Random faults per device per hour, by kind; each bank takes the kinds it knows."""

RANDOM_FAULT_KINDS = sorted({*GpuBank.faults, *NicBank.faults, *SwitchBank.faults, *LpuBank.faults})


def _rates(bank: type[DeviceBank], rates: FaultRates) -> dict[str, float]:
    return {kind: rate for kind, rate in rates.items() if kind in bank.faults}


def compute_group(
    site: Site, racks: list[Rack], first_nic: list[int], seed: int, rates: FaultRates
) -> Group:
    """A group of compute racks of one kind; `first_nic` is each rack's first NIC in the site."""
    kind = racks[0].kind
    rng = np.random.default_rng(seed)
    devices = []
    if kind.gpu is not None:
        bank = GpuBank(
            kind.gpu,
            len(racks),
            kind.nodes_per_rack,
            kind.gpus_per_node,
            rng,
            _rates(GpuBank, rates),
        )
        devices.append(Devices("gpu", bank, GpuColumns, GpuLoad, kind.gpus_per_node))
    if kind.nic is not None and kind.nics_per_node:
        nics = NicBank(
            kind.nic,
            len(racks),
            kind.nodes_per_rack,
            kind.nics_per_node,
            rng,
            _rates(NicBank, rates),
        )
        devices.append(Devices("nic", nics, NicColumns, NicLoad, kind.nics_per_node))
    if kind.lpu is not None:
        lpus = LpuBank(
            kind.lpu,
            len(racks),
            kind.nodes_per_rack,
            kind.lpus_per_node,
            rng,
            _rates(LpuBank, rates),
        )
        devices.append(Devices("lpu", lpus, LpuColumns, LpuLoad, kind.lpus_per_node))
    inventories = [
        _compute_inventory(site, rack, kind, nic)
        for rack, nic in zip(racks, first_nic, strict=True)
    ]
    return Group(
        [r.rack for r in racks],
        [r.node_ids() for r in racks],
        inventories,
        devices,
    )


def _compute_inventory(
    site: Site, rack: Rack, kind: RackKind, first_nic: int
) -> list[NodeInventory]:
    out = []
    for n, node in enumerate(rack.node_ids()):
        domain = rack.rack if kind.nvlink_domain == "rack" else node
        gpus = (
            [
                GpuInfo(
                    i,
                    _uuid(site.site, node, i),
                    kind.gpu.spec.name,
                    kind.gpu.spec.memory_mib,
                    kind.gpu.power_limit_w,
                    f"{domain}-nvl",
                )
                for i in range(kind.gpus_per_node)
            ]
            if kind.gpu
            else []
        )
        nics = (
            [
                NicInfo(
                    i,
                    kind.nic.name,
                    kind.nic.speed_gbps,
                    gpu=i if i < kind.gpus_per_node else -1,
                    peer=site.nic_peer(first_nic + n * kind.nics_per_node + i),
                )
                for i in range(kind.nics_per_node)
            ]
            if kind.nic
            else []
        )
        lpus = (
            [
                LpuInfo(i, kind.lpu.spec.name, kind.lpu.spec.sram_mb)
                for i in range(kind.lpus_per_node)
            ]
            if kind.lpu
            else []
        )
        out.append(NodeInventory(node, "lpu" if kind.lpu else "gpu", kind.system, gpus, nics, lpus))
    return out


def _uuid(site: str, node: str, index: int) -> str:
    """A stable GPU UUID in nvidia-smi's format, derived from where the GPU sits."""
    digest = np.frombuffer(f"{site}/{node}/{index}".encode().ljust(16, b"\0")[:16], np.uint8)
    digits = "".join(f"{b:02x}" for b in digest.tolist())
    return f"GPU-{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:32]}"


def switch_group(
    site: Site, net: list[tuple[str, list[str]]], seed: int, rates: FaultRates
) -> Group:
    """A group of network racks holding the same number of switches."""
    per_rack = len(net[0][1])
    bank = SwitchBank(
        SPECTRUM_4,
        len(net),
        per_rack,
        SPECTRUM_4.ports,
        np.random.default_rng(seed),
        _rates(SwitchBank, rates),
    )
    inventories = [
        [
            NodeInventory(
                switch,
                "switch",
                SPECTRUM_4.name,
                ports=[
                    PortInfo(p, SPECTRUM_4.port_gbps, _port_peer(site, switch, p))
                    for p in range(SPECTRUM_4.ports)
                ],
            )
            for switch in switches
        ]
        for _, switches in net
    ]
    return Group(
        [rack for rack, _ in net],
        [switches for _, switches in net],
        inventories,
        [Devices("port", bank, PortColumns, PortLoad, SPECTRUM_4.ports)],
    )


def _port_peer(site: Site, switch: str, port: int) -> str:
    """Who a switch port is cabled to: a leaf's lower half faces NICs, its upper half one
    port per spine; spine port `l` faces leaf `l`."""
    down = SPECTRUM_4.ports // 2
    tier, number = switch.rstrip("0123456789"), int(switch.lstrip("leafspin")) - 1
    if tier == "leaf":
        if port < down:
            return site.nic_name(number * down + port)
        spine = port - down
        return f"spine{spine + 1:02d}/{number}" if spine < site.fabric.spines else ""
    if port < site.fabric.leaves and number < down:
        return f"leaf{port + 1:02d}/{down + number}"
    return ""
