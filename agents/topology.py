"""A site's racks and fabric, from a TOML topology file or from `--racks N --rack-kind K`.

A topology file:

    site = "dc1"                 # optional; --site wins when given

    [[racks]]                    # racks are numbered r001, r002, ... in file order
    kind = "nvl72"               # nvl72, hgx-h100, hgx-h200, hgx-b200 or lpu
    count = 2

    [[racks]]
    kind = "hgx-h100"
    count = 4

    [fabric]                     # optional; sized from the NIC count when left out
    leaves = 2                   # Spectrum-X leaf switches: half their ports down, half up
    spines = 1                   # 0 for no switch agents at all
"""

import bisect
import functools
import math
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.catalog import RACK_KINDS, SPECTRUM_4, RackKind
from protocols.errors import AidcError
from protocols.ids import check_id

SWITCHES_PER_NET_RACK = 16
MAX_RACKS = 100_000


class TopologyError(AidcError, ValueError):
    """A topology that cannot be built; `str()` says where and why."""


@dataclass(frozen=True)
class Rack:
    """One rack of compute: its id, kind and position in the site."""

    rack: str
    kind: RackKind

    def node_ids(self) -> list[str]:
        """The ids of its nodes: `r001-n01`, `r001-n02`, ..."""
        return [f"{self.rack}-n{i + 1:02d}" for i in range(self.kind.nodes_per_rack)]


@dataclass(frozen=True)
class Fabric:
    """The Spectrum-X leaf/spine fabric: leaf switches face the NICs, spines the leaves."""

    leaves: int
    spines: int

    @property
    def switches(self) -> list[str]:
        """Switch ids, leaves first."""
        return [f"leaf{i + 1:02d}" for i in range(self.leaves)] + [
            f"spine{i + 1:02d}" for i in range(self.spines)
        ]

    def net_racks(self) -> Iterator[tuple[str, list[str]]]:
        """Switches grouped into network racks `net01`, `net02`, ... of up to 16 switches."""
        switches = self.switches
        for start in range(0, len(switches), SWITCHES_PER_NET_RACK):
            yield (
                f"net{start // SWITCHES_PER_NET_RACK + 1:02d}",
                switches[start : start + SWITCHES_PER_NET_RACK],
            )


@dataclass(frozen=True)
class Site:
    """Everything one site runs: compute racks and the fabric between them."""

    site: str
    racks: tuple[Rack, ...]
    fabric: Fabric

    @functools.cached_property
    def gpus(self) -> int:
        """GPUs in the site."""
        return sum(r.kind.nodes_per_rack * r.kind.gpus_per_node for r in self.racks)

    @functools.cached_property
    def nics(self) -> int:
        """Back-end NICs in the site (kept: every switch port's peer asks)."""
        return sum(r.kind.nodes_per_rack * r.kind.nics_per_node for r in self.racks)

    @functools.cached_property
    def nic_starts(self) -> list[int]:
        """The site-wide index of each rack's first NIC."""
        starts, total = [], 0
        for rack in self.racks:
            starts.append(total)
            total += rack.kind.nodes_per_rack * rack.kind.nics_per_node
        return starts

    def nic_name(self, index: int) -> str:
        """`r001-n02/nic3` for the site's `index`-th NIC ('' past the last)."""
        if not 0 <= index < self.nics:
            return ""
        position = bisect.bisect_right(self.nic_starts, index) - 1
        rack = self.racks[position]
        node, nic = divmod(index - self.nic_starts[position], rack.kind.nics_per_node)
        return f"{rack.node_ids()[node]}/nic{nic}"

    def nic_peer(self, index: int) -> str:
        """The leaf port the site's `index`-th NIC is cabled to ('' without a fabric)."""
        if not self.fabric.leaves:
            return ""
        down = SPECTRUM_4.ports // 2
        leaf, port = divmod(index % (self.fabric.leaves * down), down)
        return f"leaf{leaf + 1:02d}/{port}"


def auto_fabric(nics: int) -> Fabric:
    """A two-tier fabric just big enough for `nics`: 32 NICs a leaf, 64 leaves a spine."""
    down = SPECTRUM_4.ports // 2
    leaves = max(1, math.ceil(nics / down)) if nics else 0
    spines = max(1, math.ceil(leaves * down / SPECTRUM_4.ports)) if leaves else 0
    return Fabric(leaves, spines)


def _kind(name: str, where: str) -> RackKind:
    try:
        return RACK_KINDS[name]
    except KeyError:
        raise TopologyError(
            f"{where}: unknown rack kind {name!r}; use one of {', '.join(sorted(RACK_KINDS))}"
        ) from None


def _count(value: object, where: str, lowest: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lowest <= value <= MAX_RACKS:
        raise TopologyError(f"{where} must be a whole number from {lowest} to {MAX_RACKS}")
    return value


def build_site(site: str, kinds: list[tuple[RackKind, int]], fabric: Fabric | None) -> Site:
    """Number the racks r001, r002, ... in order, and size the fabric if not given."""
    check_id(site, "site")
    racks = tuple(
        Rack(f"r{i + 1:03d}", kind)
        for i, kind in enumerate(kind for kind, count in kinds for _ in range(count))
    )
    if len(racks) > MAX_RACKS:
        raise TopologyError(f"{len(racks)} racks is more than the {MAX_RACKS} one site may have")
    nics = sum(r.kind.nodes_per_rack * r.kind.nics_per_node for r in racks)
    return Site(site, racks, fabric if fabric is not None else auto_fabric(nics))


def generated_site(site: str, racks: int, kind: str) -> Site:
    """The site of `--racks N --rack-kind K`."""
    return build_site(site, [(_kind(kind, "--rack-kind"), _count(racks, "--racks"))], None)


def load_site(path: Path, site: str | None = None) -> Site:
    """The site a topology file describes; `site` overrides the file's."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise TopologyError(f"cannot read topology {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise TopologyError(f"{path}: {error}") from None
    return site_from_table(data, str(path), site)


def site_from_table(data: dict[str, Any], where: str, site: str | None = None) -> Site:
    """The site a parsed topology table describes (`where` names it in errors); `site`
    overrides the table's."""
    unknown = set(data) - {"site", "racks", "fabric"}
    if unknown:
        raise TopologyError(f"{where}: unknown key {sorted(unknown)[0]!r} (site, racks, fabric)")
    name = site or data.get("site", "dc1")
    if not isinstance(name, str):
        raise TopologyError(f"{where}: site must be a string")
    entries = data.get("racks")
    if not isinstance(entries, list) or not entries:
        raise TopologyError(f"{where}: needs at least one [[racks]] table with kind and count")
    kinds = []
    for number, entry in enumerate(entries, 1):
        at = f"{where}: [[racks]] #{number}"
        if not isinstance(entry, dict) or set(entry) - {"kind", "count"} or "kind" not in entry:
            raise TopologyError(f"{at} needs a kind and takes only kind and count")
        kinds.append(
            (_kind(str(entry.get("kind")), at), _count(entry.get("count", 1), at + " count"))
        )
    fabric = None
    if "fabric" in data:
        table = data["fabric"]
        if not isinstance(table, dict) or set(table) - {"leaves", "spines"}:
            raise TopologyError(f"{where}: [fabric] takes only leaves and spines")
        fabric = Fabric(
            _count(table.get("leaves", 0), f"{where}: [fabric] leaves", 0),
            _count(table.get("spines", 0), f"{where}: [fabric] spines", 0),
        )
    try:
        return build_site(name, kinds, fabric)
    except ValueError as error:
        raise TopologyError(f"{where}: {error}") from None


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (I from 0) as (I, N)."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        raise ValueError(f"shard {text!r} is not I/N with 0 <= I < N, e.g. 0/4")
    return int(index), int(count)
