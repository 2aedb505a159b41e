"""Every query's answer travels in a reply and is read back as its Struct, in msgpack and in
JSON; an answer that is not one is refused with a sentence naming what is wrong."""

from typing import get_args

import msgspec
import pytest

from protocols import codec
from protocols.commands import NodeSort, Reply
from protocols.errors import MessageError
from protocols.limits import MAX_QUERY_ROWS
from protocols.messages import Event
from protocols.queries import (
    ANSWERS,
    Answer,
    AuditEntry,
    CommandsPage,
    EventsPage,
    GpuReadings,
    NicReadings,
    NodeDetail,
    NodeRow,
    NodesPage,
    query_for,
)
from tests.samples import SAMPLES

ROW = NodeRow(
    node="r001-n01",
    rack="r001",
    kind="gpu",
    state="draining",
    gpus=8,
    healthy=7,
    allocated=8,
    utilization=91.5,
    temperature_c=71.0,
    power_w=5600.0,
    last_xid=79,
    nic_gbps=350.25,
    pool="llama-70b-h100",
)
EVENT = Event(1.0, "critical", "gpu/r001-n01/3", "xid", "XID 79: GPU fell off the bus", "x-1")
SAMPLE_ANSWERS: list[Answer] = [
    NodesPage(total=576, offset=100, sort="temperature_c", nodes=[ROW]),
    NodeDetail(
        **msgspec.structs.asdict(ROW),
        intent="drained",
        devices=[
            GpuReadings(gpu=0, present=True, gauges={"DCGM_FI_DEV_GPU_UTIL": 91.5}),
            GpuReadings(gpu=3, present=False),
        ],
        nics=[NicReadings(nic=0, present=True, gbps=350.25, counters={"rx_bytes": 2**60})],
        events=[EVENT],
    ),
    SAMPLES["pools"][0],
    SAMPLES["fabric"][0],
    EventsPage(total=3, events=[EVENT]),
    CommandsPage([AuditEntry(1.0, "c-1", "cordon", True, None, "cordon r001-n01")]),
]


@pytest.mark.parametrize("answer", SAMPLE_ANSWERS, ids=lambda answer: type(answer).__name__)
@pytest.mark.parametrize("encode", [codec.encode, codec.encode_json])
def test_every_answer_is_read_back_as_it_was_built(answer: Answer, encode: object) -> None:
    reply = Reply("q-1", ok=True, result=msgspec.to_builtins(answer))
    payload = encode(reply)  # type: ignore[operator]
    assert codec.read_answer(type(answer), codec.REPLY.decode(payload)) == answer


def test_every_kind_of_query_has_its_answer() -> None:
    assert {type(answer) for answer in SAMPLE_ANSWERS} == set(ANSWERS.values())
    for what, answer in ANSWERS.items():
        assert query_for(answer, "q-1", limit=5).what == what


def test_a_device_that_does_not_report_sends_no_readings() -> None:
    assert msgspec.to_builtins(GpuReadings(gpu=3, present=False)) == {"gpu": 3, "present": False}


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (None, "got `null`"),
        ({"total": 1, "offset": 0, "sort": "node"}, "`nodes`"),
        (
            {"total": 1, "offset": 0, "sort": "node", "nodes": [{"node": "R1"}]},
            "that is an id",
        ),
        (
            {"total": 1, "offset": 0, "sort": "node", "nodes": [{}] * (MAX_QUERY_ROWS + 1)},
            "length <= 1000",
        ),
    ],
    ids=["no result", "no nodes", "a bad id", "too many rows"],
)
def test_an_answer_that_is_not_one_is_refused_naming_why(result: object, reason: str) -> None:
    reply = Reply("q-1", ok=True, result=result)  # type: ignore[arg-type]
    with pytest.raises(MessageError) as caught:
        codec.read_answer(NodesPage, reply)
    assert str(caught.value).startswith("malformed nodes answer: ")
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_nodes_query_sorts_by_exactly_the_columns_of_its_rows() -> None:
    assert set(get_args(NodeSort)) == set(NodeRow.__struct_fields__)
