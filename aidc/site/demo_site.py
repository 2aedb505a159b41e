"""The site `aidc demo` runs: two GB200 NVL72 racks, four HGX H100 racks and two LPU racks
by default, the same mix scaled to `--racks N`, N racks of one `--rack-kind`, or a topology
file; written out as a topology file for the agents' process."""

from pathlib import Path

from agents.catalog import RACK_KINDS
from agents.topology import Site, TopologyError, build_site, load_site

DEFAULT_MIX = (("nvl72", 2), ("hgx-h100", 4), ("lpu", 2))


def mix(racks: int) -> list[tuple[str, int]]:
    """`racks` racks in the default mix's proportions (largest remainder, earlier kinds
    first on ties), kinds with no rack left out."""
    total = sum(count for _, count in DEFAULT_MIX)
    shares = [(kind, racks * count / total) for kind, count in DEFAULT_MIX]
    counts = {kind: int(share) for kind, share in shares}
    by_remainder = sorted(shares, key=lambda s: s[1] - int(s[1]), reverse=True)
    for kind, _ in by_remainder[: racks - sum(counts.values())]:
        counts[kind] += 1
    return [(kind, counts[kind]) for kind, _ in DEFAULT_MIX if counts[kind]]


def demo_site(
    site: str | None, topology: Path | None, racks: int | None, rack_kind: str | None
) -> Site:
    """The site the flags ask for (named `site`, else as the file says, else dc1);
    TopologyError (one sentence) if they cannot make one."""
    if topology is not None:
        if rack_kind is not None:
            raise TopologyError("--rack-kind goes with --racks, not with --topology")
        return load_site(topology, site)
    kinds = [(rack_kind, racks or 1)] if rack_kind else (mix(racks) if racks else DEFAULT_MIX)
    return build_site(site or "dc1", [(RACK_KINDS[k], count) for k, count in kinds], None)


def topology_toml(site: Site) -> str:
    """A topology file that describes `site` (its racks in order, and its fabric)."""
    lines = [f'site = "{site.site}"', ""]
    runs: list[tuple[str, int]] = []
    for rack in site.racks:
        if runs and runs[-1][0] == rack.kind.key:
            runs[-1] = (rack.kind.key, runs[-1][1] + 1)
        else:
            runs.append((rack.kind.key, 1))
    for kind, count in runs:
        lines += ["[[racks]]", f'kind = "{kind}"', f"count = {count}", ""]
    lines += ["[fabric]", f"leaves = {site.fabric.leaves}", f"spines = {site.fabric.spines}"]
    return "\n".join(lines) + "\n"


def describe(site: Site) -> str:
    """`2 nvl72 + 4 hgx-h100 + 2 lpu racks: 272 GPUs, 144 LPU chips`."""
    kinds: dict[str, int] = {}
    for rack in site.racks:
        kinds[rack.kind.key] = kinds.get(rack.kind.key, 0) + 1
    lpus = sum(r.kind.lpus_per_rack for r in site.racks)
    chips = f", {lpus:,} LPU chips" if lpus else ""
    racks = " + ".join(f"{count} {kind}" for kind, count in kinds.items())
    return f"{racks} racks: {site.gpus:,} GPUs{chips}"
