"""Column blocks of many racks at once: a gateway's telemetry batches, and the loads its
assignments carry, mapped onto the racks' device banks."""

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from agents.groups import Devices
from protocols.columns import Columns, Record, layout

Index = npt.NDArray[np.intp]
Loads = Record | Mapping[str, npt.NDArray[Any]]
"""A load block's columns by name."""


def pack_racks(device: Devices, racks: slice | Index, first_nodes: Index) -> Columns:
    """The samples of the devices of some racks of a group, as one block; `first_nodes[i]`
    is where the nodes of the i-th rack begin in the message's node numbering."""
    spec = layout(device.block)
    wire = device.bank.wire[racks]
    columns = {name: wire[name] for name in spec.names}  # each (racks, rows per rack)
    columns["node"] = columns["node"] + first_nodes[:, None].astype(np.uint16)
    if device.all_present[racks].all():
        return spec.pack({name: column.reshape(-1) for name, column in columns.items()})
    reporting = device.present[racks]
    return spec.pack({name: column[reporting] for name, column in columns.items()})


def load_devices(
    device: Devices, load: Loads, rack: Index | int, node: Index, rows: Index | None = None
) -> None:
    """Set the load of devices: the j-th of `load`'s rows (of those `rows` picks) is device
    `slot[j]` of node `node[j]` (within its rack) of rack `rack[j]` (or of the one rack
    given); ValueError if a device index is beyond the node's."""
    spec = layout(device.load_block)
    pick = slice(None) if rows is None else rows
    slot = load[spec.names[1]][pick].astype(np.intp)
    if slot.size and int(slot.max()) >= device.per_node:
        raise ValueError(f"{device.name} load names device {int(slot.max())} of a node")
    position = node * device.per_node + slot
    for name in spec.names[2:]:
        device.load[name][rack, position] = load[name][pick]
