"""Document sources (MemGPT's data sources): passages loaded from files, kept apart from any agent until attached.

A source is a name; each file loaded into it is one row with the SHA-256 of its bytes, and its passages (with their
vectors) are written in the same transaction as that row. So a load killed at any instant leaves whole files only,
and loading again skips every file whose bytes are unchanged. ``attach`` copies a source's passages, vectors
included, into an agent's archival memory, remembering how far it got, so attaching again copies only what was
loaded since.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memgpt_core.errors import ConfigError
from memgpt_core.storage.sqlite import now

if TYPE_CHECKING:
    from memgpt_core.storage.sqlite import AgentRecord, Store


@dataclass
class SourceInfo:
    name: str
    created_at: str
    files: int
    passages: int
    embedders: dict[str | None, int] = field(default_factory=dict)
    """Passages per embedder name (None: no vector)."""
    agents: list[str] = field(default_factory=list)
    """Agents it is attached to."""


@dataclass(frozen=True)
class LoadedFile:
    file_id: int
    path: str
    sha256: str


def check_source_name(name: str) -> str:
    if not name or not re.fullmatch(r"[\w.\-]+", name):
        raise ConfigError(
            f"{name!r} is not a valid source name", fix="use letters, digits, '-', '_' or '.', without spaces"
        )
    return name


class Sources:
    """The sources in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    def get_id(self, name: str) -> int | None:
        row = self.conn.execute("SELECT id FROM sources WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def require(self, name: str) -> int:
        source_id = self.get_id(name)
        if source_id is None:
            known = [s.name for s in self.list()]
            raise ConfigError(
                f"there is no data source named {name!r}",
                fix=f"load one first: memgpt load directory --name {name} --input-dir DIR"
                + (f" (existing sources: {', '.join(known)})" if known else ""),
            )
        return source_id

    def create(self, name: str) -> int:
        """The source's id, creating it if new."""
        check_source_name(name)
        with self.store.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO sources (name, created_at) VALUES (?, ?)", (name, now()))
        source_id = self.get_id(name)
        assert source_id is not None
        return source_id

    def list(self) -> list[SourceInfo]:
        infos = []
        for source_id, name, created in self.conn.execute("SELECT id, name, created_at FROM sources ORDER BY name"):
            files = self.conn.execute("SELECT count(*) FROM source_files WHERE source_id = ?", (source_id,)).fetchone()
            embedders: dict[str | None, int] = dict(
                self.conn.execute(
                    "SELECT p.embedder, count(*) FROM source_passages p JOIN source_files f ON f.id = p.file_id "
                    "WHERE f.source_id = ? GROUP BY p.embedder",
                    (source_id,),
                ).fetchall()
            )
            agents = [
                r[0]
                for r in self.conn.execute(
                    "SELECT a.name FROM source_attachments s JOIN agents a ON a.id = s.agent_id "
                    "WHERE s.source_id = ? ORDER BY a.name",
                    (source_id,),
                )
            ]
            infos.append(SourceInfo(name, created, files[0], sum(embedders.values()), embedders, agents))
        return infos

    def find_file(self, source_id: int, path: str) -> LoadedFile | None:
        row = self.conn.execute(
            "SELECT id, path, sha256 FROM source_files WHERE source_id = ? AND path = ?", (source_id, path)
        ).fetchone()
        return LoadedFile(*row) if row else None

    def find_hash(self, source_id: int, sha256: str) -> LoadedFile | None:
        row = self.conn.execute(
            "SELECT id, path, sha256 FROM source_files WHERE source_id = ? AND sha256 = ? LIMIT 1", (source_id, sha256)
        ).fetchone()
        return LoadedFile(*row) if row else None

    def save_file(
        self,
        source_id: int,
        path: str,
        sha256: str,
        size: int,
        passages: Sequence[str],
        vectors: tuple[str, Any] | None,
    ) -> int:
        """Write one file and all its passages in one transaction, replacing what an earlier version of the file
        left. ``vectors`` is (embedder name, array with one row per passage), or None."""
        from memgpt_core.storage.vectors import to_blob

        with self.store.transaction() as conn:
            conn.execute("DELETE FROM source_files WHERE source_id = ? AND path = ?", (source_id, path))
            cursor = conn.execute(
                "INSERT INTO source_files (source_id, path, sha256, size, passages, loaded_at) VALUES (?,?,?,?,?,?)",
                (source_id, path, sha256, size, len(passages), now()),
            )
            file_id = cursor.lastrowid
            assert file_id is not None
            if vectors is None:
                rows = [(file_id, i, text, None, None, None) for i, text in enumerate(passages)]
            else:
                name, array = vectors
                dim = int(array.shape[1])
                rows = [(file_id, i, text, name, dim, to_blob(array[i])) for i, text in enumerate(passages)]
            conn.executemany(
                "INSERT INTO source_passages (file_id, position, content, embedder, dim, vector) VALUES (?,?,?,?,?,?)",
                rows,
            )
        return file_id

    def attach(self, agent: AgentRecord, name: str) -> int:
        """Copy the source's passages not yet copied to this agent into its archival memory, in one transaction,
        with their vectors. Returns how many were copied."""
        from memgpt_core.storage.archival import write_vectors
        from memgpt_core.storage.vectors import from_blobs

        source_id = self.require(name)
        store = self.store
        with store.transaction() as conn:
            row = conn.execute(
                "SELECT copied_through FROM source_attachments WHERE agent_id = ? AND source_id = ?",
                (agent.id, source_id),
            ).fetchone()
            through = row[0] if row else 0
            rows = conn.execute(
                "SELECT p.id, p.content, p.embedder, p.dim, p.vector FROM source_passages p "
                "JOIN source_files f ON f.id = p.file_id WHERE f.source_id = ? AND p.id > ? ORDER BY p.id",
                (source_id, through),
            ).fetchall()
            stamp = now()
            store._archival_dirty = True
            unembedded: list[tuple[int, str]] = []
            groups: dict[tuple[str, int], tuple[list[int], list[bytes]]] = {}
            for _, content, embedder, dim, vector in rows:
                cursor = conn.execute(
                    "INSERT INTO archival (agent_id, created_at, content) VALUES (?,?,?)", (agent.id, stamp, content)
                )
                archival_id = cursor.lastrowid
                assert archival_id is not None
                if embedder is None or vector is None:
                    unembedded.append((archival_id, content))
                else:
                    ids, blobs = groups.setdefault((embedder, dim), ([], []))
                    ids.append(archival_id)
                    blobs.append(vector)
            for (embedder, dim), (ids, blobs) in groups.items():
                write_vectors(conn, agent.id, embedder, ids, from_blobs(blobs, dim))
            if unembedded:
                store.archival_index.added(conn, agent.id, unembedded)
            last = rows[-1][0] if rows else through
            conn.execute(
                "INSERT INTO source_attachments (agent_id, source_id, attached_at, copied_through) VALUES (?,?,?,?) "
                "ON CONFLICT (agent_id, source_id) DO UPDATE SET attached_at = excluded.attached_at, "
                "copied_through = excluded.copied_through",
                (agent.id, source_id, stamp, last),
            )
        return len(rows)


@dataclass
class LoadReport:
    """What one ``memgpt load`` did, file by file."""

    loaded: list[tuple[str, int]] = field(default_factory=list)
    """(path, passages) of each file written."""
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    """(path, the path already holding the same bytes)."""
    skipped: list[str] = field(default_factory=list)
    """One line per file that could not be read: its path and why."""


def load_documents(
    store: Store,
    source: str,
    paths: Sequence[Any],
    *,
    embedder: Any,
    chunk_size: int,
    on_file: Any = None,
) -> LoadReport:
    """Load files into a source: read, split, embed, then write each file in its own transaction.

    An unreadable file is recorded in ``skipped`` and the load goes on. An unchanged file (same path, same SHA-256)
    and a copy of a file already in the source are left alone. An embedding failure stops the load (files written
    before it stay; the same command goes on from there). ``on_file(path)`` is called after each file, for a
    progress bar."""
    sources = Sources(store)
    source_id = sources.create(source)
    report = LoadReport()
    for raw_path in paths:
        try:
            _load_one(sources, source_id, raw_path.absolute(), embedder, chunk_size, report)
        finally:
            if on_file is not None:
                on_file(raw_path)
    return report


def _load_one(sources: Sources, source_id: int, path: Any, embedder: Any, chunk_size: int, report: LoadReport) -> None:
    from memgpt_core.storage import documents

    shown = str(path)
    try:
        data = documents.read_bytes(path)
        sha = documents.file_hash(data)
        known = sources.find_file(source_id, shown)
        if known is not None and known.sha256 == sha:
            report.unchanged.append(shown)
            return
        copy = sources.find_hash(source_id, sha)
        if copy is not None and copy.path != shown:
            report.duplicates.append((shown, copy.path))
            return
        text = documents.document_text(path, data)
    except documents.UnreadableFileError as exc:
        report.skipped.append(exc.message)
        return
    passages = documents.split_passages(text, chunk_size, markdown=documents.is_markdown(path))
    vectors = (embedder.name, embedder.embed(passages)) if embedder is not None and passages else None
    sources.save_file(source_id, shown, sha, len(data), passages, vectors)
    report.loaded.append((shown, len(passages)))
