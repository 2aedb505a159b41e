"""The journal: desired state and the command log survive restarts, SIGKILL and resends."""

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from protocols.commands import (
    Autoscale,
    ClearFault,
    Cordon,
    Drain,
    InjectFault,
    OperatorCommand,
    Query,
    Reboot,
    Reply,
    Route,
    Scale,
    Uncordon,
)
from sim.journal import (
    AutoscalerSettings,
    Change,
    DesiredState,
    IdConflict,
    Journal,
    JournalError,
    NodeIntent,
    NodeReleased,
    ReplicaTarget,
    RouteWeights,
)

ROOT = Path(__file__).resolve().parents[2]
AUTOSCALE = Autoscale(id="a1", pool="llama-h100", enabled=True, max_replicas=8, target_ttft_s=0.5)
EVERY_KIND: list[Change] = [
    NodeIntent("r1-n1", "cordoned", 10.0, "c1", reason="fan"),
    NodeIntent("r1-n2", "draining", 11.0, "d1", deadline=311.0, force=True),
    NodeIntent("r1-n3", "drained", 12.0),
    ReplicaTarget("llama-h100", 6),
    RouteWeights("llama-70b", {"llama-h100": 75.0, "llama-lpu": 25.0}),
    AutoscalerSettings.of(AUTOSCALE),
    AutoscalerSettings("mixtral-b200", False, 0, 4, 12.0, None, 30.0),
]
EVERY_KIND_STATE = DesiredState(
    nodes={
        "r1-n1": NodeIntent("r1-n1", "cordoned", 10.0, "c1", reason="fan"),
        "r1-n2": NodeIntent("r1-n2", "draining", 11.0, "d1", deadline=311.0, force=True),
        "r1-n3": NodeIntent("r1-n3", "drained", 12.0),
    },
    replicas={"llama-h100": 6},
    routes={"llama-70b": {"llama-h100": 75.0, "llama-lpu": 25.0}},
    autoscalers={
        "llama-h100": AutoscalerSettings("llama-h100", True, 1, 8, None, 0.5, 60.0),
        "mixtral-b200": AutoscalerSettings("mixtral-b200", False, 0, 4, 12.0, None, 30.0),
    },
)
EMPTY = DesiredState({}, {}, {}, {})
KILLED_AFTER_COMMIT = """
import os, sys
from protocols.commands import Cordon, Reply, Scale
from sim.journal import Journal, NodeIntent, ReplicaTarget
from tests.sim.test_journal import EVERY_KIND
journal = Journal(sys.argv[1])
journal.save(EVERY_KIND)
cordon = Cordon(id="c9", nodes=["r2-n1"])
journal.commit(cordon, Reply(id="c9", ok=True), 20.0, [NodeIntent("r2-n1", "cordoned", 20.0, "c9")])
scale = Scale(id="s9", pool="llama-h100", replicas=9)
journal.commit(scale, Reply(id="s9", ok=True), 21.0, [ReplicaTarget("llama-h100", 9)])
os.kill(os.getpid(), 9)
"""


def ok(command: OperatorCommand) -> Reply:
    return Reply(id=command.id, ok=True)


def cordon(command_id: str, *nodes: str) -> Cordon:
    return Cordon(id=command_id, nodes=list(nodes))


def test_every_kind_of_desired_state_round_trips() -> None:
    with Journal(":memory:") as journal:
        assert journal.desired() == EMPTY
        journal.save(EVERY_KIND)
        assert journal.desired() == EVERY_KIND_STATE


def test_later_changes_replace_earlier_ones() -> None:
    with Journal(":memory:") as journal:
        journal.save(EVERY_KIND)
        journal.save(
            [
                NodeIntent("r1-n2", "drained", 300.0, "d1"),
                ReplicaTarget("llama-h100", 2),
                RouteWeights("llama-70b", {"llama-b200": 100.0}),
                AutoscalerSettings("llama-h100", False, 1, 8, None, 0.5, 60.0),
            ]
        )
        state = journal.desired()
    assert state.nodes["r1-n2"] == NodeIntent("r1-n2", "drained", 300.0, "d1")
    assert state.replicas == {"llama-h100": 2}
    assert state.routes == {"llama-70b": {"llama-b200": 100.0}}, "old pools must leave the route"
    assert not state.autoscalers["llama-h100"].enabled


def test_uncordon_forgets_the_node_intent() -> None:
    with Journal(":memory:") as journal:
        journal.save(EVERY_KIND)
        uncordon = Uncordon(id="u1", nodes=["r1-n1", "r1-n2"])
        journal.commit(uncordon, ok(uncordon), 50.0, [NodeReleased("r1-n1"), NodeReleased("r1-n2")])
        assert list(journal.desired().nodes) == ["r1-n3"]


def test_desired_state_and_replies_come_back_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as journal:
        journal.save(EVERY_KIND)
        journal.commit(AUTOSCALE, ok(AUTOSCALE), 5.0, [AutoscalerSettings.of(AUTOSCALE)])
    with Journal(path) as journal:
        assert journal.desired() == EVERY_KIND_STATE
        assert journal.reply_for(AUTOSCALE) == ok(AUTOSCALE)
        assert [entry.id for entry in journal.audit()] == ["a1"]


def test_a_commit_survives_sigkill_right_after_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    child = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_COMMIT, str(path)], cwd=ROOT, capture_output=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert Path(f"{path}-wal").stat().st_size > 0, "the kill must come before any checkpoint"
    with Journal(path) as journal:
        state = journal.desired()
        assert state.nodes["r2-n1"] == NodeIntent("r2-n1", "cordoned", 20.0, "c9")
        assert state.replicas == {"llama-h100": 9}
        assert state.routes == EVERY_KIND_STATE.routes
        assert journal.reply_for(Scale(id="s9", pool="llama-h100", replicas=9)) is not None
        assert [entry.id for entry in journal.audit()] == ["s9", "c9"]


def test_the_same_id_gets_the_same_reply_and_no_second_row() -> None:
    command = Drain(id="d1", nodes=["r1-n1"], grace_s=60.0)
    refused = Reply(id="d1", ok=False, error="pool llama-h100 would fall below 2 available")
    with Journal(":memory:") as journal:
        assert journal.reply_for(command) is None
        journal.commit(command, refused, 1.0)
        assert journal.reply_for(command) == refused
        resent = Drain(id="d1", nodes=["r1-n1"], grace_s=60.0, reply_to="aidc/v1/s/ctl/reply/x")
        assert journal.reply_for(resent) == refused, "where the reply goes is not the command"
        with pytest.raises(IdConflict, match="'d1' is already in the journal"):
            journal.commit(command, refused, 2.0, [NodeReleased("r1-n1")])
        assert len(journal.audit()) == 1


def test_route_weights_in_another_order_are_the_same_command() -> None:
    first = Route(id="r1", model="llama-70b", weights={"a": 60.0, "b": 40.0})
    with Journal(":memory:") as journal:
        journal.commit(first, ok(first), 1.0)
        again = Route(id="r1", model="llama-70b", weights={"b": 40.0, "a": 60.0})
        assert journal.reply_for(again) == ok(first)


def test_an_id_reused_for_another_command_is_reported() -> None:
    with Journal(":memory:") as journal:
        journal.commit(cordon("op-7", "r1-n1"), ok(cordon("op-7")), 1.0)
        with pytest.raises(IdConflict, match="'op-7' was already used for: cordon r1-n1"):
            journal.reply_for(cordon("op-7", "r1-n2"))


def test_a_failed_change_rolls_back_its_command() -> None:
    command = Scale(id="s1", pool="llama-h100", replicas=3)
    with Journal(":memory:") as journal:
        with pytest.raises(sqlite3.IntegrityError):
            journal.commit(command, ok(command), 1.0, [ReplicaTarget("llama-h100", -1)])
        assert journal.audit() == []
        assert journal.reply_for(command) is None
        journal.commit(command, ok(command), 2.0, [ReplicaTarget("llama-h100", 3)])
        assert journal.desired().replicas == {"llama-h100": 3}


def test_a_reply_must_answer_its_command() -> None:
    with Journal(":memory:") as journal, pytest.raises(ValueError, match="does not answer"):
        journal.commit(cordon("c1", "r1-n1"), Reply(id="c2", ok=True), 1.0)


def test_the_audit_log_is_newest_first_and_pages() -> None:
    with Journal(":memory:") as journal:
        for number in range(5):
            command = cordon(f"c{number}", "r1-n1")
            journal.commit(command, ok(command), 10.0 * number)
        entries = journal.audit()
        assert [entry.id for entry in entries] == ["c4", "c3", "c2", "c1", "c0"]
        assert [entry.time for entry in entries] == [40.0, 30.0, 20.0, 10.0, 0.0]
        assert [entry.id for entry in journal.audit(limit=2, offset=2)] == ["c2", "c1"]
        assert [entry.id for entry in journal.audit(since_time=30.0)] == ["c4", "c3"]
        assert journal.audit(offset=5) == []


@pytest.mark.parametrize(
    ("command", "ok_", "error", "summary"),
    [
        (
            Cordon(id="x", nodes=["n1", "n2", "n3", "n4", "n5"], reason="fan"),
            True,
            None,
            "cordon n1, n2, n3 and 2 more: fan",
        ),
        (Drain(id="x", nodes=["n1"], force=True), True, None, "drain n1 (grace 300 s, force)"),
        (Uncordon(id="x", nodes=["n1"]), True, None, "uncordon n1"),
        (Reboot(id="x", nodes=["n1", "n2"]), True, None, "reboot n1, n2"),
        (Scale(id="x", pool="p", replicas=4), True, None, "scale p to 4 replicas"),
        (Route(id="x", model="m", weights={"p": 60, "q": 40}), True, None, "route m: p 60%, q 40%"),
        (AUTOSCALE, True, None, "autoscale llama-h100 on, 1-8 replicas"),
        (Autoscale(id="x", pool="p", enabled=False), True, None, "autoscale p off"),
        (
            InjectFault(id="x", target="n1", kind="xid", params={"code": 79, "gpu": 3}),
            False,
            "unknown node n1",
            "inject_fault xid on n1 (code=79, gpu=3)",
        ),
        (ClearFault(id="x", target="n1"), True, None, "clear_fault every fault on n1"),
        (Query(id="x", what="commands"), True, None, "query commands"),
    ],
)
def test_audit_entries_say_what_was_asked_and_how_it_ended(
    command: OperatorCommand, ok_: bool, error: str | None, summary: str
) -> None:
    with Journal(":memory:") as journal:
        journal.commit(command, Reply(id=command.id, ok=ok_, error=error), 7.0)
        [entry] = journal.audit()
    assert (entry.time, entry.id, entry.ok, entry.error) == (7.0, command.id, ok_, error)
    assert entry.op == summary.split()[0]
    assert entry.summary == summary


def commit_cordons(journal: Journal, times: list[float]) -> None:
    for number, time in enumerate(times):
        node = f"r1-n{number}"
        command = cordon(f"c{number}", node)
        journal.commit(command, ok(command), time, [NodeIntent(node, "cordoned", time)])


def test_commands_beyond_the_count_are_pruned_but_desired_state_is_kept() -> None:
    with Journal(":memory:", keep_commands=3) as journal:
        commit_cordons(journal, [1.0] * 5)
        assert [entry.id for entry in journal.audit()] == ["c4", "c3", "c2"]
        assert journal.reply_for(cordon("c0", "r1-n0")) is None, "a forgotten id is new again"
        assert len(journal.desired().nodes) == 5


def test_commands_older_than_the_retention_are_pruned_but_desired_state_is_kept() -> None:
    with Journal(":memory:", keep_seconds=100.0) as journal:
        commit_cordons(journal, [0.0, 50.0, 120.0, 160.0])
        assert [entry.id for entry in journal.audit()] == ["c3", "c2"]
        assert journal.reply_for(cordon("c1", "r1-n1")) is None, "a forgotten id is new again"
        assert len(journal.desired().nodes) == 4


def write_garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 200)


def foreign_database(path: Path) -> None:
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (text TEXT)")
    other.close()


def newer_journal(path: Path) -> None:
    Journal(path).close()
    with sqlite3.connect(path) as later:
        later.execute("PRAGMA user_version = 99")
    later.close()


def damaged_journal(path: Path) -> None:
    with Journal(path) as journal:
        for number in range(300):
            command = Cordon(id=f"c{number}", nodes=["r1-n1"], reason="x" * 500)
            journal.commit(command, ok(command), float(number))
    with path.open("r+b") as file:
        file.seek(8192)
        file.write(b"\xa5" * 16384)


@pytest.mark.parametrize(
    ("make", "sentence"),
    [
        (write_garbage, "is not a readable aidc journal (file is not a database)"),
        (foreign_database, "is not an aidc journal (it is another program's SQLite database)"),
        (
            newer_journal,
            "was written by a newer aidc (journal schema 99; this aidc reads schema 1)",
        ),
        (damaged_journal, "damaged"),
    ],
)
def test_a_file_that_is_not_a_sound_journal_is_refused_in_one_sentence(
    tmp_path: Path, make: Callable[[Path], None], sentence: str
) -> None:
    path = tmp_path / "journal.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(JournalError) as refused:
        Journal(path)
    assert str(refused.value).startswith(str(path))
    assert sentence in str(refused.value)
    assert "\n" not in str(refused.value)
    assert path.read_bytes() == before, "a refused file must be left as it was"


def test_a_journal_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "journal.db"
    with pytest.raises(JournalError, match=f"cannot open the journal {path}"):
        Journal(path)


def test_readers_keep_reading_while_the_core_writes(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as journal:
        reader = sqlite3.connect(path, isolation_level=None, timeout=0)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM replica_target").fetchone() == (0,)
        command = Scale(id="s1", pool="llama-h100", replicas=3)
        journal.commit(command, ok(command), 1.0, [ReplicaTarget("llama-h100", 3)])
        assert reader.execute("SELECT count(*) FROM replica_target").fetchone() == (0,)
        reader.execute("COMMIT")
        with Journal(path) as second:
            assert second.desired().replicas == {"llama-h100": 3}
            assert second.audit()[0].id == "s1"
        reader.close()
