"""Topology files and generated sites: racks, fabric, cabling, shards and clear errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.catalog import RACK_KINDS
from agents.fleet import Fleet, _groups
from agents.groups import _port_peer
from agents.topology import (
    Fabric,
    TopologyError,
    auto_fabric,
    generated_site,
    load_site,
    parse_shard,
)
from protocols.endpoint import Endpoint

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
site = "lab"

[[racks]]
kind = "nvl72"
count = 2

[[racks]]
kind = "hgx-h100"
count = 3

[[racks]]
kind = "lpu"

[fabric]
leaves = 4
spines = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_a_topology_file_numbers_racks_in_order(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, GOOD))
    assert site.site == "lab"
    assert [r.rack for r in site.racks] == ["r001", "r002", "r003", "r004", "r005", "r006"]
    assert [r.kind.key for r in site.racks] == ["nvl72"] * 2 + ["hgx-h100"] * 3 + ["lpu"]
    assert site.gpus == 2 * 72 + 3 * 32
    assert site.fabric == Fabric(4, 2)
    assert load_site(write(tmp_path, GOOD), "other").site == "other"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[[racks]]\nkind = 'nvl73'\n", "unknown rack kind 'nvl73'; use one of"),
        ("[[racks]]\nkind = 'nvl72'\ncount = 0\n", "count must be a whole number from 1"),
        ("[[racks]]\ncount = 2\n", "needs a kind"),
        ("[[racks]]\nkind = 'nvl72'\ncolor = 'red'\n", "takes only kind and count"),
        ("site = 'Lab 1'\n[[racks]]\nkind = 'nvl72'\n", "site 'Lab 1' is not valid"),
        ("racks = 3\n", "needs at least one [[racks]]"),
        ("[[racks]]\nkind = 'nvl72'\n[fabric]\nleaves = -1\n", "leaves must be a whole number"),
        ("[[racks]]\nkind = 'nvl72'\n[fabric]\ncores = 1\n", "takes only leaves and spines"),
        ("[[racks]]\nkind = 'nvl72'\nrows = 4\nbad line\n", "line 4"),
        ("[[racks]]\nkind = 'nvl72'\n[power]\n", "unknown key 'power'"),
    ],
)
def test_bad_topologies_say_where_and_why(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(TopologyError, match=r"site\.toml") as caught:
        load_site(write(tmp_path, text))
    assert error in str(caught.value)


def test_a_missing_file_is_one_sentence() -> None:
    with pytest.raises(TopologyError, match=r"cannot read topology /nope\.toml: No such file"):
        load_site(Path("/nope.toml"))


def test_generated_sites_get_a_fabric_sized_for_their_nics() -> None:
    site = generated_site("dc1", 4, "hgx-b200")
    assert site.nics == 4 * 4 * 8
    assert site.fabric == auto_fabric(128) == Fabric(4, 2)
    assert len(list(site.fabric.net_racks())) == 1


def test_cabling_is_consistent_from_both_ends() -> None:
    site = generated_site("dc1", 2, "nvl72")
    for index in range(site.nics):
        nic = site.nic_name(index)
        switch, port = site.nic_peer(index).split("/")
        assert _port_peer(site, switch, int(port)) == nic
    for leaf in range(site.fabric.leaves):
        for spine in range(site.fabric.spines):
            switch, port = _port_peer(site, f"leaf{leaf + 1:02d}", 32 + spine).split("/")
            assert _port_peer(site, switch, int(port)) == f"leaf{leaf + 1:02d}/{32 + spine}"
    assert site.nic_name(site.nics) == ""


def test_shards_split_the_site_without_overlap() -> None:
    site = generated_site("dc1", 7, "hgx-h100")
    shards = [_groups(site, (i, 3), seed=0, rates={}) for i in range(3)]
    racks = [rack for groups in shards for group in groups for rack in group.racks]
    assert sorted(racks) == sorted([r.rack for r in site.racks] + ["net01"])


@pytest.mark.parametrize("text", ["3/2", "1", "a/b", "-1/2", "2/2"])
def test_bad_shards(text: str) -> None:
    with pytest.raises(ValueError, match="is not I/N"):
        parse_shard(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--racks", "0"], "argument --racks: '0' is not above 0"),
        (["--racks", "2", "--rack-kind", "dgx"], "argument --rack-kind: invalid choice: 'dgx'"),
        (["--racks", "2", "--shard", "4/2"], "shard '4/2' is not I/N"),
        (["--racks", "2", "--topology", "x.toml"], "not allowed with argument"),
        (["--interval", "-1", "--racks", "1"], "'-1' is not above 0"),
        ([], "give --topology FILE or --racks N"),
        (["--topology", "/nope.toml"], "cannot read topology /nope.toml"),
        (["--racks", "1", "--fault-rate", "fire=1"], "'fire' is not a fault kind"),
        (["--racks", "1", "--fault-rate", "xid=-2"], "rate '-2' is not a number of faults"),
    ],
)
def test_agents_command_errors_are_one_line(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aidc", "agents", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_rack_kind_can_be_generated() -> None:
    for kind in RACK_KINDS:
        assert generated_site("dc1", 1, kind).racks[0].kind.key == kind


def test_fault_rates_reach_the_banks_that_know_the_kind() -> None:
    site = generated_site("dc1", 2, "hgx-h100")
    fleet = Fleet(site, Endpoint("127.0.0.1", 1), fault_rates={"xid": 3600.0, "lpu_chip": 1.0})
    gpus = next(d for g in fleet.groups for d in g.devices if d.name == "gpu")
    assert gpus.bank.fault_rates == {"xid": 3600.0}
    for _ in range(3):
        for group in fleet.groups:
            group.step(1.0, fleet.rng)
    assert np.count_nonzero(gpus.bank.wire["DCGM_FI_DEV_XID_ERRORS"]) > 0
    quiet = Fleet(site, Endpoint("127.0.0.1", 1))
    for group in quiet.groups:
        group.step(3.0, quiet.rng)
    quiet_gpus = next(d for g in quiet.groups for d in g.devices if d.name == "gpu")
    assert np.count_nonzero(quiet_gpus.bank.wire["DCGM_FI_DEV_XID_ERRORS"]) == 0
