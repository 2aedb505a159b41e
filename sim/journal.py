"""The core's durable desired state and audit log of operator commands, in one SQLite file."""

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, assert_never

import msgspec

from protocols.codec import REPLY, encode_json
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
from protocols.errors import AidcError
from protocols.limits import MAX_TEXT
from protocols.queries import AuditEntry

APPLICATION_ID = 0x61696463
"""`aidc` in ASCII, kept in the SQLite header: tells a journal from any other database."""
SCHEMA_VERSION = 1
KEEP_SECONDS = 30 * 86400.0
"""Commands older than this (simulated time) leave the audit log; then their ids are free."""
KEEP_COMMANDS = 100_000
"""The audit log keeps at most this many commands. Desired state is kept however old."""
BUSY_TIMEOUT_S = 2.0
"""How long a write waits for another process's write; in WAL mode readers never block it."""
_SHOWN = 3
"""Targets named in an audit summary before `and N more`."""

NodeIntentState = Literal["cordoned", "draining", "drained"]

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS node_intent (
    node TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('cordoned', 'draining', 'drained')),
    since REAL NOT NULL,
    command TEXT,
    reason TEXT NOT NULL,
    deadline REAL,
    force INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replica_target (
    pool TEXT PRIMARY KEY,
    replicas INTEGER NOT NULL CHECK (replicas >= 0)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS route (
    model TEXT NOT NULL,
    pool TEXT NOT NULL,
    weight REAL NOT NULL CHECK (weight BETWEEN 0 AND 100),
    PRIMARY KEY (model, pool)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS autoscaler (
    pool TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL,
    min_replicas INTEGER NOT NULL,
    max_replicas INTEGER NOT NULL,
    target_queue_depth REAL,
    target_ttft_s REAL,
    cooldown_s REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS command (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    time REAL NOT NULL,
    op TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    summary TEXT NOT NULL,
    body TEXT NOT NULL,
    reply TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS command_time ON command (time);
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
_CANONICAL = msgspec.json.Encoder(order="deterministic")


class JournalError(AidcError, RuntimeError):
    """A file that cannot be the journal; `str()` is one sentence for the user."""


class IdConflict(AidcError, ValueError):
    """A command id the journal already holds for another command; `str()` names it."""


@dataclass(frozen=True, slots=True)
class NodeIntent:
    """A node taken out of placement: cordoned, draining or drained."""

    node: str
    state: NodeIntentState
    since: float
    """Simulated time the state was set."""
    command: str | None = None
    """The command that set it; None when the core's health policy did."""
    reason: str = ""
    deadline: float | None = None
    """Draining: simulated time the grace period ends."""
    force: bool = False
    """Draining: even below a pool's minimum available replicas."""


@dataclass(frozen=True, slots=True)
class NodeReleased:
    """A node back in service (uncordon): its intent is forgotten."""

    node: str


@dataclass(frozen=True, slots=True)
class ReplicaTarget:
    """A pool's desired replicas."""

    pool: str
    replicas: int


@dataclass(frozen=True, slots=True)
class RouteWeights:
    """A model's traffic split across pools in percent, replacing its previous split."""

    model: str
    weights: dict[str, float]


@dataclass(frozen=True, slots=True)
class AutoscalerSettings:
    """A pool's autoscaler, as the last `autoscale` command set it."""

    pool: str
    enabled: bool
    min_replicas: int
    max_replicas: int
    target_queue_depth: float | None
    target_ttft_s: float | None
    cooldown_s: float

    @classmethod
    def of(cls, command: Autoscale) -> "AutoscalerSettings":
        """The settings an `autoscale` command asks for."""
        return cls(
            command.pool,
            command.enabled,
            command.min_replicas,
            command.max_replicas,
            command.target_queue_depth,
            command.target_ttft_s,
            command.cooldown_s,
        )


Change = NodeIntent | NodeReleased | ReplicaTarget | RouteWeights | AutoscalerSettings


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Everything the control plane restores after a restart."""

    nodes: dict[str, NodeIntent]
    replicas: dict[str, int]
    routes: dict[str, dict[str, float]]
    autoscalers: dict[str, AutoscalerSettings]


class Journal:
    """Desired state and applied commands in SQLite (WAL, synchronous=FULL); ':memory:' for tests.

    Synchronous: each call is one short transaction, for the core's event loop thread.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        keep_seconds: float = KEEP_SECONDS,
        keep_commands: int = KEEP_COMMANDS,
    ) -> None:
        self._path = str(path)
        self._keep_seconds = keep_seconds
        self._keep_commands = keep_commands
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as error:
            raise JournalError(f"cannot open the journal {self._path}: {error}") from None
        try:
            self._open()
        except sqlite3.OperationalError as error:
            self._db.close()
            raise JournalError(f"cannot use the journal {self._path}: {error}") from None
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise JournalError(f"{self._path} is not a readable aidc journal ({error})") from None
        except JournalError:
            self._db.close()
            raise

    def _open(self) -> None:
        """Create the schema in a new file, or check an existing file is a sound journal."""
        application_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if application_id == 0 and tables == 0:
            self._db.executescript(_SCHEMA)
        elif application_id != APPLICATION_ID:
            raise JournalError(
                f"{self._path} is not an aidc journal (it is another program's SQLite database)"
            )
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self._path} was written by a newer aidc (journal schema {version}; "
                f"this aidc reads schema {SCHEMA_VERSION})"
            )
        problem = self._db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            detail = " ".join(problem.split())
            raise JournalError(f"{self._path} is a damaged aidc journal ({detail})")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")

    def close(self) -> None:
        """Close the file; everything committed is already on disk."""
        self._db.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction: committed if the body returns, rolled back if it raises."""
        self._db.execute(begin)
        try:
            yield self._db
            self._db.execute("COMMIT")
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def commit(
        self,
        command: OperatorCommand,
        reply: Reply,
        time: float,
        changes: Iterable[Change] = (),
    ) -> None:
        """Record a command, its reply and the desired-state changes it made, atomically.

        Call it before sending the reply: once it returns, neither SIGKILL nor power loss
        loses it. An id the journal already holds raises IdConflict and changes nothing.
        """
        if reply.id != command.id:
            raise ValueError(f"reply {reply.id!r} does not answer command {command.id!r}")
        with self._transaction() as db:
            try:
                db.execute(
                    "INSERT INTO command (id, time, op, ok, error, summary, body, reply) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        command.id,
                        time,
                        _op(command),
                        reply.ok,
                        reply.error,
                        summary(command),
                        _canonical(command),
                        encode_json(reply).decode(),
                    ),
                )
            except sqlite3.IntegrityError:
                raise IdConflict(f"command id {command.id!r} is already in the journal") from None
            _apply(db, changes)
            self._prune(db, time)

    def save(self, changes: Iterable[Change]) -> None:
        """Durably apply changes no command made: a drain that finished, an autoscaler's target."""
        with self._transaction() as db:
            _apply(db, changes)

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        """Forget commands beyond the retention time or count."""
        db.execute("DELETE FROM command WHERE time < ?", (now - self._keep_seconds,))
        db.execute(
            "DELETE FROM command WHERE seq <= (SELECT max(seq) FROM command) - ?",
            (self._keep_commands,),
        )

    def reply_for(self, command: OperatorCommand) -> Reply | None:
        """The stored reply if this command was already applied, None if its id is new.

        A resend that differs only in `reply_to` is the same command; any other difference
        raises IdConflict naming the id and the command it already names.
        """
        row = self._db.execute(
            "SELECT body, summary, reply FROM command WHERE id = ?", (command.id,)
        ).fetchone()
        if row is None:
            return None
        body, earlier, reply = row
        if body != _canonical(command):
            raise IdConflict(f"command id {command.id!r} was already used for: {earlier}")
        return REPLY.decode(reply.encode())

    def audit(
        self, since_time: float | None = None, limit: int = 100, offset: int = 0
    ) -> list[AuditEntry]:
        """Recorded commands newest first, optionally only those at or after `since_time`."""
        rows = self._db.execute(
            "SELECT time, id, op, ok, error, summary FROM command "
            "WHERE ?1 IS NULL OR time >= ?1 ORDER BY seq DESC LIMIT ?2 OFFSET ?3",
            (since_time, limit, offset),
        )
        return [
            AuditEntry(time, id_, op, bool(ok), error, text)
            for time, id_, op, ok, error, text in rows
        ]

    def desired(self) -> DesiredState:
        """The desired state, read in one snapshot."""
        with self._transaction("BEGIN DEFERRED") as db:
            nodes = {
                row[0]: NodeIntent(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))
                for row in db.execute(
                    "SELECT node, state, since, command, reason, deadline, force FROM node_intent"
                )
            }
            replicas = dict(db.execute("SELECT pool, replicas FROM replica_target").fetchall())
            routes: dict[str, dict[str, float]] = {}
            for model, pool, weight in db.execute("SELECT model, pool, weight FROM route"):
                routes.setdefault(model, {})[pool] = weight
            autoscalers = {
                row[0]: AutoscalerSettings(
                    row[0], bool(row[1]), row[2], row[3], row[4], row[5], row[6]
                )
                for row in db.execute(
                    "SELECT pool, enabled, min_replicas, max_replicas, target_queue_depth, "
                    "target_ttft_s, cooldown_s FROM autoscaler"
                )
            }
        return DesiredState(nodes, replicas, routes, autoscalers)


def _apply(db: sqlite3.Connection, changes: Iterable[Change]) -> None:
    """Write desired-state changes inside the caller's transaction."""
    for change in changes:
        match change:
            case NodeIntent():
                db.execute(
                    "INSERT OR REPLACE INTO node_intent "
                    "(node, state, since, command, reason, deadline, force) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        change.node,
                        change.state,
                        change.since,
                        change.command,
                        change.reason,
                        change.deadline,
                        change.force,
                    ),
                )
            case NodeReleased():
                db.execute("DELETE FROM node_intent WHERE node = ?", (change.node,))
            case ReplicaTarget():
                db.execute(
                    "INSERT OR REPLACE INTO replica_target (pool, replicas) VALUES (?, ?)",
                    (change.pool, change.replicas),
                )
            case RouteWeights():
                db.execute("DELETE FROM route WHERE model = ?", (change.model,))
                db.executemany(
                    "INSERT INTO route (model, pool, weight) VALUES (?, ?, ?)",
                    [(change.model, pool, weight) for pool, weight in change.weights.items()],
                )
            case AutoscalerSettings():
                db.execute(
                    "INSERT OR REPLACE INTO autoscaler (pool, enabled, min_replicas, "
                    "max_replicas, target_queue_depth, target_ttft_s, cooldown_s) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        change.pool,
                        change.enabled,
                        change.min_replicas,
                        change.max_replicas,
                        change.target_queue_depth,
                        change.target_ttft_s,
                        change.cooldown_s,
                    ),
                )
            case _:
                assert_never(change)


def _op(command: OperatorCommand) -> str:
    return str(command.__struct_config__.tag)


def _canonical(command: OperatorCommand) -> str:
    """JSON that two sendings of the same command share: sorted keys, no `reply_to`."""
    return _CANONICAL.encode(msgspec.structs.replace(command, reply_to=None)).decode()


def _listed(names: Iterable[str]) -> str:
    """The first few names, then how many more."""
    listed = list(names)
    more = f" and {len(listed) - _SHOWN} more" if len(listed) > _SHOWN else ""
    return ", ".join(listed[:_SHOWN]) + more


def _because(reason: str) -> str:
    return f": {reason}" if reason else ""


def summary(command: OperatorCommand) -> str:
    """One line for the audit log: the op, its targets and settings."""
    match command:
        case Cordon():
            detail = _listed(command.nodes) + _because(command.reason)
        case Drain():
            force = ", force" if command.force else ""
            grace = f" (grace {command.grace_s:g} s{force})"
            detail = _listed(command.nodes) + grace + _because(command.reason)
        case Uncordon() | Reboot():
            detail = _listed(command.nodes)
        case Scale():
            detail = f"{command.pool} to {command.replicas} replicas"
        case Route():
            weights = (f"{pool} {weight:g}%" for pool, weight in command.weights.items())
            detail = f"{command.model}: {_listed(weights)}"
        case Autoscale():
            limits = f"on, {command.min_replicas}-{command.max_replicas} replicas"
            detail = f"{command.pool} {limits if command.enabled else 'off'}"
        case InjectFault():
            params = ", ".join(f"{name}={value}" for name, value in command.params.items())
            detail = f"{command.kind} on {command.target}" + (f" ({params})" if params else "")
        case ClearFault():
            detail = f"{command.kind or 'every fault'} on {command.target}"
        case Query():
            detail = command.what
        case _:
            assert_never(command)
    return f"{_op(command)} {detail}"[:MAX_TEXT]
