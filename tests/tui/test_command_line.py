"""Command mode's parser: what each line means, and the one sentence for each bad line."""

import itertools

import pytest

from protocols.commands import Autoscale, ClearFault, Drain, InjectFault, Route, Scale
from tui.command_line import CommandLineError, GoTo, Parsed, Run, Send, parse


def parsed(line: str) -> Parsed:
    ids = itertools.count(1)
    return parse(line, lambda: f"c-{next(ids)}")


@pytest.mark.parametrize(
    ("line", "meaning"),
    [
        (":nodes", GoTo("nodes")),
        (
            "nodes r012 state=draining rack=r012",
            GoTo("nodes", "r012", (("rack", "r012"), ("state", "draining"))),
        ),
        ("node r001-n01", GoTo("node", "r001-n01")),
        ("racks temperature", GoTo("racks", "temperature")),
        ("events xid thermal", GoTo("events", "xid thermal")),
        ("q", Run("quit")),
        ("?", Run("help")),
        (
            "drain r001-n01 r001-n02 grace=60 force reason='fan noise'",
            Send(
                Drain(
                    id="c-1",
                    nodes=["r001-n01", "r001-n02"],
                    grace_s=60,
                    force=True,
                    reason="fan noise",
                )
            ),
        ),
        ("scale llama-70b-h100 0", Send(Scale(id="c-1", pool="llama-70b-h100", replicas=0))),
        ("route m a=70 b=30", Send(Route(id="c-1", model="m", weights={"a": 70, "b": 30}))),
        (
            "autoscale p on min=2 max=12 ttft=0.5",
            Send(
                Autoscale(
                    id="c-1",
                    pool="p",
                    enabled=True,
                    min_replicas=2,
                    max_replicas=12,
                    target_ttft_s=0.5,
                )
            ),
        ),
        (
            "fault r001-n03 xid code=79 gpu=2",
            Send(
                InjectFault(id="c-1", target="r001-n03", kind="xid", params={"code": 79, "gpu": 2})
            ),
        ),
        ("clear leaf01 link_flap", Send(ClearFault(id="c-1", target="leaf01", kind="link_flap"))),
    ],
)
def test_lines_mean_what_they_say(line: str, meaning: Parsed) -> None:
    assert parsed(line) == meaning


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("", "type a command, e.g. :nodes or :drain r012-n03 (:help lists all)"),
        ("frobnicate", "unknown command 'frobnicate' (:help lists every command)"),
        ("autoscale p maybe", "autoscale: autoscaler 'maybe' is not on or off"),
        ("autoscale p on min=5 max=2", "autoscale: min_replicas (5) is above max_replicas (2)"),
        ("fault r001-n01 meteor", "fault: kind 'meteor' is not one of xid, cooling,"),
        ("scale p 2000000", "scale: replicas must be at most 1e+06, not 2e+06"),
        ("scale p", "scale needs a pool and a number of replicas: :scale POOL REPLICAS"),
        ("drain r001-n01 'fan", "cannot read that line: No closing quotation"),
        ("racks heat", "racks: metric 'heat' is not one of utilization, temperature, power"),
        ("pools extra", "pools: unexpected 'extra'; usage :pools"),
        ("cordon r001-n01 grace=5", "cordon: unknown option 'grace' (options: reason)"),
        ("route m a", "route: 'a' is not POOL=PERCENT"),
        ("route m a=101", "route: weight of a must be at most 100, not 101"),
        ("node Big", "node: node 'Big' is not valid"),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, error: str) -> None:
    with pytest.raises(CommandLineError) as caught:
        parsed(line)
    assert str(caught.value).startswith(error)
