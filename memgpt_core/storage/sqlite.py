"""The SQLite store: agents, core memory, every message (recall) and archival passages, in one WAL-mode file.

Each agent step is written in one transaction (``Store.transaction``), so a process killed at any instant loses at
most the step in flight. Recall search uses FTS5 (BM25). Archival search fuses BM25 with vectors from an embedder
(``memgpt_core.storage.archival``); the vectors live here too, as float32 BLOBs (``memgpt_core.storage.vectors`` says
why). Documents loaded with ``memgpt load`` are kept as sources (``memgpt_core.storage.sources``) in the same file.
``synchronous=NORMAL`` in WAL mode survives any process crash; only a power cut can drop the last few commits, and
even then the file is never corrupt.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from memgpt_core.errors import AgentInUseError, ConfigError, MemGPTError
from memgpt_core.storage.archival import AUTO, HybridArchivalIndex, write_vectors

HOME_ENV = "MEMGPT_HOME"
DB_NAME = "memgpt.db"
SCHEMA_VERSION = 2
"""1: agents, messages, archival. 2: archival vectors and document sources (new tables only, so a version-1 file is
brought up to date in one transaction, with every row kept)."""
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
COUNT_CAP = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    config TEXT NOT NULL,
    persona TEXT NOT NULL,
    human TEXT NOT NULL,
    persona_limit INTEGER NOT NULL,
    human_limit INTEGER NOT NULL,
    context TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT,
    content TEXT,
    function_call TEXT,
    text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS messages_by_date ON messages(agent_id, created_at);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(text, content='messages', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages WHEN new.text != '' BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages WHEN old.text != '' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE IF NOT EXISTS archival (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    content TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archival_by_agent ON archival(agent_id);
CREATE VIRTUAL TABLE IF NOT EXISTS archival_fts USING fts5(content, content='archival', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS archival_fts_insert AFTER INSERT ON archival BEGIN
    INSERT INTO archival_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER IF NOT EXISTS archival_fts_delete AFTER DELETE ON archival BEGIN
    INSERT INTO archival_fts(archival_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TABLE IF NOT EXISTS archival_vectors (
    id INTEGER PRIMARY KEY REFERENCES archival(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    embedder TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS archival_vectors_by_agent ON archival_vectors(agent_id, embedder, id);
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS source_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    passages INTEGER NOT NULL,
    loaded_at TEXT NOT NULL,
    UNIQUE (source_id, path)
);
CREATE TABLE IF NOT EXISTS source_passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES source_files(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    content TEXT NOT NULL,
    embedder TEXT,
    dim INTEGER,
    vector BLOB
);
CREATE INDEX IF NOT EXISTS source_passages_by_file ON source_passages(file_id, position);
CREATE TABLE IF NOT EXISTS source_attachments (
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    attached_at TEXT NOT NULL,
    copied_through INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, source_id)
);
"""


# Recall results say who spoke; the agent is "you" because the results are read by the agent itself.
_SPEAKER = "(CASE t.role WHEN 'user' THEN 'user: ' WHEN 'assistant' THEN 'you: ' ELSE '' END) || "


def memgpt_home() -> Path:
    """``$MEMGPT_HOME``, or ``~/.memgpt``."""
    raw = os.environ.get(HOME_ENV, "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".memgpt"


WRITTEN_KEY = "raw"
"""Where the column ``function_call`` keeps ``MessageRecord.written`` (the name earlier versions stored it under)."""


def _call_column(function_call: dict[str, Any] | None, written: str | None) -> str | None:
    if function_call is None:
        return None
    return json.dumps({**function_call, WRITTEN_KEY: written} if written is not None else function_call)


def now() -> str:
    """The current UTC time in the store's format (sortable text)."""
    return datetime.now(timezone.utc).strftime(TIME_FORMAT)


@dataclass
class AgentRecord:
    """One agent as stored: its settings, core memory, the ids of the messages in its context, and loop state."""

    id: str
    name: str
    created_at: str
    config: dict[str, Any]
    persona: str
    human: str
    persona_limit: int = 2000
    human_limit: int = 2000
    context: list[int] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class MessageRecord:
    """One message as the agent saw it (OpenAI chat shape), plus ``text``: its readable part, indexed for search."""

    id: int
    created_at: str
    role: str
    content: str | None
    name: str | None = None
    function_call: dict[str, Any] | None = None
    text: str = ""
    written: str | None = None
    """For an assistant message: the text the model wrote, so the wrapper can write the answer back word for word
    (the server's prompt cache holds those tokens). Not part of the chat message."""

    def to_chat(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            message["name"] = self.name
        if self.function_call is not None:
            message["function_call"] = self.function_call
        return message


@dataclass
class SearchPage:
    """One page of search results: ``items`` are (time, text) pairs; ``total`` counts every match."""

    items: list[tuple[str, str]]
    total: int
    page: int
    page_size: int
    more: bool = False
    """There are more than ``total`` matches (counting stops at COUNT_CAP)."""

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


class ArchivalIndex(Protocol):
    """How archival passages are found: ``HybridArchivalIndex`` (BM25 and vectors) by default, ``Fts5ArchivalIndex``
    for words only. ``added`` runs inside the transaction that inserted the passages."""

    def search(self, conn: sqlite3.Connection, agent_id: str, query: str, limit: int, offset: int) -> SearchPage: ...

    def added(self, conn: sqlite3.Connection, agent_id: str, rows: Sequence[tuple[int, str]]) -> None: ...


def fts_query(text: str, *, any_word: bool = False) -> str | None:
    """A safe FTS5 query from free text: each word quoted (no operators from the user), all words or any word."""
    words = re.findall(r"\w+", text.lower())
    if not words:
        return None
    joiner = " OR " if any_word else " AND "
    return joiner.join(f'"{w}"' for w in dict.fromkeys(words))


def _fts_page(
    conn: sqlite3.Connection,
    fts: str,
    table: str,
    show: str,
    agent_id: str,
    query: str,
    limit: int,
    offset: int,
    order: str = "rank",
) -> SearchPage:
    """One page of one agent's matches, by BM25 (``order="rank"``) or newest first (``"rowid DESC"``, which FTS5
    streams without scoring every match). ``show`` is an SQL expression over the table aliased ``t``.

    The agent filter is a join on the table's rows, which costs in proportion to the word's matches. (Making the
    agent id an FTS column was tried: it costs in proportion to the agent's rows, several times slower at 100k.)"""
    # Every word first; if nothing has them all, any word, so a search for three words still finds something.
    for any_word in (False, True):
        match = fts_query(query, any_word=any_word)
        if match is None:
            break
        # CROSS JOIN keeps FTS5 the outer loop; otherwise SQLite may walk the agent's rows and run the MATCH per row.
        hits = f"FROM {fts} f CROSS JOIN {table} t ON t.id = f.rowid WHERE {fts} MATCH ? AND t.agent_id = ?"
        # Counting stops at COUNT_CAP: "more than 1000" tells the model as much, and costs no more than a page.
        total = conn.execute(
            f"SELECT count(*) FROM (SELECT 1 {hits} LIMIT {COUNT_CAP + 1})", (match, agent_id)
        ).fetchone()[0]
        if total:
            rows = conn.execute(
                f"SELECT t.created_at, {show} {hits} ORDER BY f.{order} LIMIT ? OFFSET ?",
                (match, agent_id, limit, offset),
            ).fetchall()
            return SearchPage(
                [(r[0], r[1]) for r in rows], min(total, COUNT_CAP), offset // limit + 1, limit, total > COUNT_CAP
            )
    return SearchPage([], 0, offset // limit + 1, limit)


class Fts5ArchivalIndex:
    """Archival search by SQLite FTS5 BM25 relevance only (the triggers index new passages)."""

    def search(self, conn: sqlite3.Connection, agent_id: str, query: str, limit: int, offset: int) -> SearchPage:
        return _fts_page(conn, "archival_fts", "archival", "t.content", agent_id, query, limit, offset)

    def added(self, conn: sqlite3.Connection, agent_id: str, rows: Sequence[tuple[int, str]]) -> None:
        return None


class AgentLock:
    """An OS file lock that says one process has an agent open; the OS drops it when the process dies."""

    def __init__(self, path: Path, agent_name: str) -> None:
        self.path = path
        self.agent_name = agent_name
        self._file: Any = None

    def acquire(self) -> AgentLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for as long as the lock lives
        try:
            _lock_file(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AgentInUseError(
                f"agent {self.agent_name!r} is in use by {holder}",
                fix="close the other `memgpt run` or `memgpt send` using it, or pick another agent with --agent",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                _unlock_file(self._file)
            self._file.close()
            self._file = None

    def __enter__(self) -> AgentLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_file(handle: Any) -> None:
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_file(handle: Any) -> None:
    if os.name == "nt":  # pragma: no cover
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
_UNWRITABLE = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_IOERR")
_WRITABLE_FIX = f"set {HOME_ENV} to a folder you can write to"


def _make_folder(folder: Path) -> None:
    """Create the folder that holds the database, or raise ConfigError naming it, the cause and the fix."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"cannot use {folder} as the memgpt folder: it is a file, not a folder", fix=_WRITABLE_FIX)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cause = exc.strerror or type(exc).__name__
        blocker = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            cause = f"{blocker} is a file, not a folder"
        elif exc.filename is not None and str(exc.filename) != str(folder):
            cause += f" ({exc.filename})"
        raise ConfigError(f"cannot create the memgpt folder {folder}: {cause}", fix=_WRITABLE_FIX) from None


def _error_name(exc: sqlite3.DatabaseError) -> str:
    """The SQLite result code's name (``SQLITE_NOTADB``...); read from the message on Python 3.10."""
    name = getattr(exc, "sqlite_errorname", None)
    if name:
        return str(name)
    text = str(exc).lower()
    if "file is not a database" in text:
        return "SQLITE_NOTADB"
    if "malformed" in text:
        return "SQLITE_CORRUPT"
    if "unable to open" in text:
        return "SQLITE_CANTOPEN"
    if "readonly" in text:
        return "SQLITE_READONLY"
    return ""


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> MemGPTError:
    """The error for a database that would not open: a damaged file and an unwritable folder have different fixes."""
    name = _error_name(exc)
    what = f"could not open the agent database {path}: {exc}"
    if name.startswith(_DAMAGED):
        companions = [p.name for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
        also = f" (and {' and '.join(companions)} next to it)" if companions else ""
        return MemGPTError(
            f"{what}; the file is damaged",
            fix=f"move {path}{also} aside, for example to {path.name}.damaged, and memgpt starts a new, empty "
            f"database on its next run; or restore {path.name} from a backup",
        )
    if name.startswith(_UNWRITABLE):
        return ConfigError(
            f"{what}; memgpt cannot create or write files in {path.parent}",
            fix=f"make {path.parent} writable, or {_WRITABLE_FIX}",
        )
    return MemGPTError(what, fix=f"if it persists, set {HOME_ENV} to another folder")


class Store:
    """Every agent's state in one SQLite file. Writes happen inside ``transaction()``; one per agent step."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        archival_index: ArchivalIndex | None = None,
        embedder: Any = AUTO,
    ):
        """``embedder``: AUTO (what the environment configures, resolved on first archival use), an ``Embedder``, or
        None for search by words only. ``archival_index`` replaces the hybrid index altogether."""
        self.home = Path(path).parent if path else memgpt_home()
        self.path = Path(path) if path else self.home / DB_NAME
        _make_folder(self.path.parent)
        self.conn = None  # type: ignore[assignment]
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a step is exactly one transaction.
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"the agent database {self.path} was written by a newer memgpt (schema {version})",
                    fix="upgrade memgpt, or point MEMGPT_HOME at another folder",
                )
            if version < SCHEMA_VERSION:
                # One transaction: a process killed while creating or upgrading the file leaves the old version whole.
                # Every statement is IF NOT EXISTS, so two processes doing it at once both succeed.
                self.conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;")
        except sqlite3.DatabaseError as exc:
            if self.conn is not None:
                self.conn.close()
            raise _open_error(self.path, exc) from None
        except BaseException:
            if self.conn is not None:
                self.conn.close()
            raise
        self.hybrid: HybridArchivalIndex | None = None
        if archival_index is None:
            self.hybrid = HybridArchivalIndex(self, embedder)
        self.archival_index: ArchivalIndex = archival_index or self.hybrid  # type: ignore[assignment]
        self._depth = 0
        self._archival_writes = 0
        self._archival_dirty = False

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all. Nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        # IMMEDIATE takes the write lock up front, so two writers queue instead of failing half-way.
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._archival_changed()
            raise
        self._depth = 0
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
        self._archival_changed()

    def _archival_changed(self) -> None:
        """Count a finished transaction that wrote archival rows (committed or rolled back: either way the cached
        vectors must be checked again)."""
        if self._archival_dirty:
            self._archival_dirty = False
            self._archival_writes += 1

    def archival_token(self) -> tuple[int, int]:
        """Changes whenever archival rows may have changed: this store's own archival writes, and SQLite's
        ``data_version`` (which moves when another connection commits)."""
        if self._archival_dirty:  # inside a transaction that wrote: never trust a cache
            self._archival_writes += 1
        return self.conn.execute("PRAGMA data_version").fetchone()[0], self._archival_writes

    def agent_name(self, agent_id: str) -> str:
        row = self.conn.execute("SELECT name FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return row[0] if row else agent_id

    # -- agents ----------------------------------------------------------------------------------------------------

    def lock(self, agent: AgentRecord) -> AgentLock:
        """The agent's lock, acquired: raises AgentInUseError when another process holds it."""
        return AgentLock(self.home / "locks" / f"{agent.id}.lock", agent.name).acquire()

    def create_agent(
        self,
        name: str,
        *,
        persona: str,
        human: str,
        config: dict[str, Any] | None = None,
        persona_limit: int = 2000,
        human_limit: int = 2000,
    ) -> AgentRecord:
        if not name or not re.fullmatch(r"[\w.\-]+", name):
            raise ConfigError(
                f"{name!r} is not a valid agent name", fix="use letters, digits, '-', '_' or '.', without spaces"
            )
        record = AgentRecord(
            id=uuid.uuid4().hex,
            name=name,
            created_at=now(),
            config=dict(config or {}),
            persona=persona,
            human=human,
            persona_limit=persona_limit,
            human_limit=human_limit,
        )
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT INTO agents VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        record.id,
                        record.name,
                        record.created_at,
                        json.dumps(record.config),
                        record.persona,
                        record.human,
                        record.persona_limit,
                        record.human_limit,
                        "[]",
                        "{}",
                    ),
                )
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"an agent named {name!r} already exists", fix=f"resume it with --agent {name}, or pick another name"
            ) from None
        return record

    def get_agent(self, name: str) -> AgentRecord | None:
        row = self.conn.execute("SELECT * FROM agents WHERE name = ? OR id = ?", (name, name)).fetchone()
        return _agent(row) if row else None

    def list_agents(self) -> list[tuple[AgentRecord, int, int]]:
        """Every agent with its recall and archival counts, oldest first."""
        rows = self.conn.execute("SELECT * FROM agents ORDER BY created_at, name").fetchall()
        return [(a, self.count_messages(a.id), self.count_archival(a.id)) for a in map(_agent, rows)]

    def save_agent(self, agent: AgentRecord) -> None:
        """Write the agent's memory, context and state (call inside the step's transaction)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE agents SET config=?, persona=?, human=?, persona_limit=?, human_limit=?, context=?, state=? "
                "WHERE id=?",
                (
                    json.dumps(agent.config),
                    agent.persona,
                    agent.human,
                    agent.persona_limit,
                    agent.human_limit,
                    json.dumps(agent.context),
                    json.dumps(agent.state),
                    agent.id,
                ),
            )

    def delete_agent(self, agent: AgentRecord) -> None:
        with self.transaction() as conn:
            self._archival_dirty = True
            conn.execute("DELETE FROM messages WHERE agent_id = ?", (agent.id,))
            conn.execute("DELETE FROM archival_vectors WHERE agent_id = ?", (agent.id,))
            conn.execute("DELETE FROM archival WHERE agent_id = ?", (agent.id,))
            conn.execute("DELETE FROM agents WHERE id = ?", (agent.id,))
        if self.hybrid is not None:
            self.hybrid.forget(agent.id)
        with contextlib.suppress(OSError):
            (self.home / "locks" / f"{agent.id}.lock").unlink()

    # -- messages (recall memory) ----------------------------------------------------------------------------------

    def add_message(
        self,
        agent_id: str,
        role: str,
        content: str | None,
        *,
        name: str | None = None,
        function_call: dict[str, Any] | None = None,
        text: str = "",
        created_at: str | None = None,
        written: str | None = None,
    ) -> MessageRecord:
        created = created_at or now()
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (agent_id, created_at, role, name, content, function_call, text) "
                "VALUES (?,?,?,?,?,?,?)",
                (
                    agent_id,
                    created,
                    role,
                    name,
                    content,
                    _call_column(function_call, written),
                    text,
                ),
            )
        assert cursor.lastrowid is not None
        return MessageRecord(cursor.lastrowid, created, role, content, name, function_call, text, written)

    def get_messages(self, ids: Sequence[int]) -> list[MessageRecord]:
        """The messages with these ids, in the order given (missing ids are skipped)."""
        if not ids:
            return []
        found: dict[int, MessageRecord] = {}
        # Chunks keep us under SQLite's bound-parameter limit for long contexts.
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT id, created_at, role, content, name, function_call, text FROM messages WHERE id IN ({marks})",
                chunk,
            ):
                call = json.loads(row[5]) if row[5] else None
                written = call.pop(WRITTEN_KEY, None) if isinstance(call, dict) else None
                found[row[0]] = MessageRecord(row[0], row[1], row[2], row[3], row[4], call, row[6], written)
        return [found[i] for i in ids if i in found]

    def update_message(self, agent_id: str, message: MessageRecord) -> None:
        with self.transaction() as conn:
            # Delete then insert, so the FTS triggers keep the search index in step with the new text.
            conn.execute("DELETE FROM messages WHERE id = ?", (message.id,))
            conn.execute(
                "INSERT INTO messages (id, agent_id, created_at, role, name, content, function_call, text) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    message.id,
                    agent_id,
                    message.created_at,
                    message.role,
                    message.name,
                    message.content,
                    _call_column(message.function_call, message.written),
                    message.text,
                ),
            )

    def delete_messages(self, ids: Sequence[int]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def count_messages(self, agent_id: str) -> int:
        """Messages in recall memory: those with readable text (user messages, replies, thoughts, results)."""
        return self.conn.execute(
            "SELECT count(*) FROM messages WHERE agent_id = ? AND text != ''", (agent_id,)
        ).fetchone()[0]

    def search_messages(self, agent_id: str, query: str, *, page: int = 1, page_size: int = 5) -> SearchPage:
        """Recall search by words, newest first (a conversation is searched for when something was said)."""
        offset = (max(page, 1) - 1) * page_size
        show = _SPEAKER + "t.text"
        return _fts_page(self.conn, "messages_fts", "messages", show, agent_id, query, page_size, offset, "rowid DESC")

    def search_messages_by_date(
        self, agent_id: str, start: str, end: str, *, page: int = 1, page_size: int = 5
    ) -> SearchPage:
        """Recall messages from ``start`` to ``end`` (YYYY-MM-DD, both days included, UTC), oldest first."""
        low = _parse_day(start, "start_date")
        high = _parse_day(end, "end_date")
        if high < low:
            raise ValueError(f"end_date {end} is before start_date {start}")
        low_s = low.strftime(TIME_FORMAT)
        high_s = (high + timedelta(days=1)).strftime(TIME_FORMAT)
        offset = (max(page, 1) - 1) * page_size
        total = self.conn.execute(
            "SELECT count(*) FROM messages WHERE agent_id = ? AND created_at >= ? AND created_at < ? AND text != ''",
            (agent_id, low_s, high_s),
        ).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT created_at, {_SPEAKER}t.text FROM messages t WHERE agent_id = ? AND created_at >= ? "
            "AND created_at < ? "
            "AND text != '' ORDER BY created_at, id LIMIT ? OFFSET ?",
            (agent_id, low_s, high_s, page_size, offset),
        ).fetchall()
        return SearchPage([(r[0], r[1]) for r in rows], total, max(page, 1), page_size)

    # -- archival memory -------------------------------------------------------------------------------------------

    def archival_insert(self, agent_id: str, content: str, *, created_at: str | None = None) -> int:
        """Save one passage, with its vector when there is an embedder (a failed embedding still saves the text)."""
        with self.transaction() as conn:
            self._archival_dirty = True
            cursor = conn.execute(
                "INSERT INTO archival (agent_id, created_at, content) VALUES (?,?,?)",
                (agent_id, created_at or now(), content),
            )
            assert cursor.lastrowid is not None
            self.archival_index.added(conn, agent_id, [(cursor.lastrowid, content)])
        return cursor.lastrowid

    def archival_insert_many(
        self,
        agent_id: str,
        passages: Sequence[str],
        *,
        created_at: str | None = None,
        vectors: tuple[str, Any] | None = None,
    ) -> list[int]:
        """Save passages in one transaction. ``vectors`` is ``(embedder name, array)`` when they are embedded
        already (a source being attached); otherwise the index embeds them."""
        stamp = created_at or now()
        with self.transaction() as conn:
            self._archival_dirty = True
            ids = []
            for content in passages:
                cursor = conn.execute(
                    "INSERT INTO archival (agent_id, created_at, content) VALUES (?,?,?)", (agent_id, stamp, content)
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
            if vectors is not None:
                write_vectors(conn, agent_id, vectors[0], ids, vectors[1])
            else:
                self.archival_index.added(conn, agent_id, list(zip(ids, passages, strict=True)))
        return ids

    def set_archival_vectors(self, agent_id: str, embedder: str, ids: Sequence[int], vectors: Any) -> None:
        """Replace these passages' vectors (``memgpt archival reembed``), in one transaction."""
        with self.transaction() as conn:
            self._archival_dirty = True
            write_vectors(conn, agent_id, embedder, ids, vectors)

    def archival_vector_counts(self, agent_id: str) -> dict[str | None, int]:
        """How many of the agent's passages have vectors from each embedder (None: no vector)."""
        counts: dict[str | None, int] = dict(
            self.conn.execute(
                "SELECT embedder, count(*) FROM archival_vectors WHERE agent_id = ? GROUP BY embedder", (agent_id,)
            ).fetchall()
        )
        without = self.count_archival(agent_id) - sum(counts.values())
        if without:
            counts[None] = without
        return counts

    def archival_search(self, agent_id: str, query: str, *, page: int = 1, page_size: int = 5) -> SearchPage:
        offset = (max(page, 1) - 1) * page_size
        return self.archival_index.search(self.conn, agent_id, query, page_size, offset)

    def count_archival(self, agent_id: str) -> int:
        return self.conn.execute("SELECT count(*) FROM archival WHERE agent_id = ?", (agent_id,)).fetchone()[0]


def _agent(row: Sequence[Any]) -> AgentRecord:
    return AgentRecord(
        id=row[0],
        name=row[1],
        created_at=row[2],
        config=json.loads(row[3]),
        persona=row[4],
        human=row[5],
        persona_limit=row[6],
        human_limit=row[7],
        context=json.loads(row[8]),
        state=json.loads(row[9]),
    )


def _parse_day(value: str, label: str) -> datetime:
    try:
        return datetime.strptime(str(value).strip()[:10], "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"{label} {value!r} is not a date in the form YYYY-MM-DD") from None
