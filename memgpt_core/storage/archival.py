"""Hybrid archival search: BM25 (FTS5) and vector similarity, fused by score; words only without vectors.

Each vector is stored with its embedder's name and size. Search uses only the vectors of the current embedder:
passages embedded by another model, or saved while embedding failed, are still found by their words, and the person
at the keyboard is told once how to give them vectors again (``memgpt archival reembed --agent NAME``). A size that
does not match is said once the same way and search goes on by words: nothing is lost, nothing crashes.

Nothing heavy is imported here: numpy comes with ``memgpt_core.storage.vectors``, on the first search or insert that
has an embedder.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memgpt_core.errors import MemGPTError

if TYPE_CHECKING:
    from memgpt_core.embeddings import Embedder
    from memgpt_core.storage.sqlite import SearchPage, Store
    from memgpt_core.storage.vectors import VectorCache, VectorSet

log = logging.getLogger("memgpt.archival")

DEPTH = 100
"""How many results each side (words, vectors) contributes to the fusion; MemGPT's archival search also ranked its
top 100. A page past them says it is past the last page."""
_VOCABULARY = "CREATE VIRTUAL TABLE IF NOT EXISTS temp.archival_vocab USING fts5vocab(main, archival_fts, row)"
WORD_BUDGET = 2000
"""At most this many passages are scored by BM25 for one search (see ``HybridArchivalIndex._bm25``): about 5 ms."""
BACKFILL_LIMIT = 256
"""Passages with no vector at all (saved while embedding failed, or from before vectors existed) are embedded at the
next search when there are at most this many; more wait for ``memgpt archival reembed``."""

AUTO: Any = object()
"""``embedder=AUTO``: the embedder the environment asks for (``memgpt_core.embeddings.make_embedder``), resolved on
first use."""

# Words that match nearly every passage: BM25 gives them little weight, but FTS5 still has to score every passage
# they match, which made a natural question ("when is ...") cost 100+ ms at 100,000 passages. The vector side reads
# the whole question anyway.
_STOPWORD_TEXT = """a about am an and any are as at be been but by can could did do does for from had has have he her
him his how i if in into is it its me my no not of on or our she so than that the their them then there these they
this to us was we were what when where which who whom why will with would you your"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def query_words(text: str) -> list[str]:
    """The words of a question worth matching: no stopwords and no single letters (the "s" of "Ana's", an initial),
    unless nothing else is left."""
    words = list(dict.fromkeys(re.findall(r"\w+", text.lower())))
    return [w for w in words if w not in STOPWORDS and len(w) > 1] or words


def word_query(words: Sequence[str]) -> str | None:
    """An FTS5 query matching any of ``words``, each quoted so that nothing the user typed is an FTS operator."""
    return " OR ".join(f'"{w}"' for w in words) if words else None


class HybridArchivalIndex:
    """The store's archival index: ``added`` embeds new passages, ``search`` fuses words and vectors."""

    def __init__(self, store: Store, embedder: Any = AUTO, *, depth: int = DEPTH, fusion: str = "score") -> None:
        """``fusion``: ``"score"`` (relative score fusion, the default) or ``"rank"`` (reciprocal rank fusion, kept
        for the benchmark's comparison)."""
        self.store = store
        self._embedder = embedder
        self.depth = depth
        self.fusion = fusion
        self._cache: VectorCache | None = None
        self._said: set[str] = set()
        self.notes: list[str] = []
        """Everything said once (also logged as a warning on the ``memgpt.archival`` logger)."""

    # -- the embedder ----------------------------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder | None:
        """The embedder, resolved on first use; None (said once) when there is none or its settings are wrong."""
        if self._embedder is AUTO:
            from memgpt_core.embeddings import make_embedder

            try:
                self._embedder, why = make_embedder()
            except MemGPTError as exc:
                self._embedder, why = None, f"archival search is by words only: {exc}"
            if why:
                self.say("no-embedder", why)
        return self._embedder

    def say(self, key: str, text: str) -> None:
        """Tell the person once per store (a warning on stderr when nothing else handles the logger)."""
        if key in self._said:
            return
        self._said.add(key)
        self.notes.append(text)
        log.warning("%s", text)

    # -- writing ---------------------------------------------------------------------------------------------------

    def added(self, conn: sqlite3.Connection, agent_id: str, rows: Sequence[tuple[int, str]]) -> None:
        """Embed passages just inserted (inside the caller's transaction). If embedding fails they stay, found by
        words, and get vectors later (at a search while few, or from ``reembed``)."""
        embedder = self.embedder
        if embedder is None or not rows:
            return
        try:
            vectors = embedder.embed([text for _, text in rows])
            name = embedder.name
        except MemGPTError as exc:
            self.say(f"embed-failed:{agent_id}", f"archival passages were saved without vectors: {exc}")
            return
        write_vectors(conn, agent_id, name, [r[0] for r in rows], vectors)

    # -- searching -------------------------------------------------------------------------------------------------

    def search(self, conn: sqlite3.Connection, agent_id: str, query: str, limit: int, offset: int) -> SearchPage:
        from memgpt_core.storage.sqlite import SearchPage, _fts_page

        vectors, embedder = self._vectors(conn, agent_id)
        if vectors is None or embedder is None or not len(vectors):
            return _fts_page(conn, "archival_fts", "archival", "t.content", agent_id, query, limit, offset)
        try:
            [vector] = embedder.embed([query])
        except MemGPTError as exc:
            self.say(f"query-failed:{agent_id}", f"archival search is by words only for now: {exc}")
            return _fts_page(conn, "archival_fts", "archival", "t.content", agent_id, query, limit, offset)
        if vector.shape[0] != vectors.dim:
            self._mismatch(agent_id, embedder.name, [vectors.dim], vector.shape[0])
            return _fts_page(conn, "archival_fts", "archival", "t.content", agent_id, query, limit, offset)
        from memgpt_core.storage.vectors import fuse_ranks, fuse_scores

        by_meaning = vectors.nearest(vector, self.depth, embedder.min_similarity, prefix=embedder.prefix_dims)
        by_words = self._bm25(conn, agent_id, query)
        if self.fusion == "rank":
            fused = fuse_ranks([[p for p, _ in by_words], [p for p, _ in by_meaning]])
        else:
            fused = fuse_scores(by_words, by_meaning, lambda passages: vectors.similarity(vector, passages))
        page_ids = fused[offset : offset + limit]
        found: dict[int, tuple[str, str]] = {}
        if page_ids:
            marks = ",".join("?" * len(page_ids))
            for row in conn.execute(f"SELECT id, created_at, content FROM archival WHERE id IN ({marks})", page_ids):
                found[row[0]] = (row[1], row[2])
        items = [found[i] for i in page_ids if i in found]
        more = len(by_words) >= self.depth or len(by_meaning) >= self.depth
        return SearchPage(items, len(fused), offset // limit + 1, limit, more)

    def _bm25(self, conn: sqlite3.Connection, agent_id: str, query: str) -> list[tuple[int, float]]:
        """(passage id, BM25 score, higher is better) of the best ``depth`` matches of any of the query's words.

        BM25 scores every passage a word matches, so the words are taken rarest first while the passages they
        match stay within WORD_BUDGET (the counts come from FTS5's own vocabulary table). A word found in thousands
        of passages tells them apart badly anyway, and the vectors still read the whole question."""
        counts = self._document_counts(conn, query_words(query))
        kept: list[str] = []
        total = 0
        for word, count in sorted(counts.items(), key=lambda wc: wc[1]):
            if total + count > WORD_BUDGET:
                break
            kept.append(word)
            total += count
        match = word_query(kept)
        if match is None:
            return []
        rows = conn.execute(
            "SELECT t.id, f.rank FROM archival_fts f CROSS JOIN archival t ON t.id = f.rowid "
            "WHERE archival_fts MATCH ? AND t.agent_id = ? ORDER BY f.rank LIMIT ?",
            (match, agent_id, self.depth),
        )
        return [(r[0], -r[1]) for r in rows]  # FTS5's rank is the BM25 score negated

    def _document_counts(self, conn: sqlite3.Connection, words: Sequence[str]) -> dict[str, int]:
        """How many passages (of every agent) contain each word; words found nowhere are left out."""
        counts = {}
        for word in words:
            try:
                row = conn.execute("SELECT doc FROM temp.archival_vocab WHERE term = ?", (word,)).fetchone()
            except sqlite3.OperationalError:
                # A temporary table on this connection only (made again if a rolled-back step took it away): it
                # reads the index FTS5 already keeps, and changes no schema.
                conn.execute(_VOCABULARY)
                row = conn.execute("SELECT doc FROM temp.archival_vocab WHERE term = ?", (word,)).fetchone()
            if row and row[0]:
                counts[word] = int(row[0])
        return counts

    def _vectors(self, conn: sqlite3.Connection, agent_id: str) -> tuple[VectorSet | None, Embedder | None]:
        """The agent's vectors from the current embedder, after telling (once) about passages that have none."""
        embedder = self.embedder
        if embedder is None:
            return None, None
        try:
            name = embedder.name
        except MemGPTError as exc:
            self.say(f"query-failed:{agent_id}", f"archival search is by words only for now: {exc}")
            return None, None
        from memgpt_core.storage.vectors import DimensionsDiffer, VectorCache

        if self._cache is None:
            self._cache = VectorCache()
        token = self.store.archival_token()
        before = self._cache._sets.get((agent_id, name))
        try:
            vectors = self._cache.get(conn, agent_id, name, token)
        except DimensionsDiffer as exc:
            self._mismatch(agent_id, name, exc.dims, None)
            return None, None
        if vectors is not before:
            vectors = self._check(conn, agent_id, embedder, vectors, token)
        return vectors, embedder

    def _check(
        self, conn: sqlite3.Connection, agent_id: str, embedder: Embedder, vectors: VectorSet, token: tuple[int, int]
    ) -> VectorSet:
        """After (re)loading: embed a few passages that have no vector; say once what is still missing."""
        name = embedder.name
        total = self.store.count_archival(agent_id)
        if len(vectors) >= total:
            return vectors
        missing = conn.execute(
            "SELECT a.id, a.content FROM archival a LEFT JOIN archival_vectors v ON v.id = a.id "
            "WHERE a.agent_id = ? AND v.id IS NULL ORDER BY a.id LIMIT ?",
            (agent_id, BACKFILL_LIMIT + 1),
        ).fetchall()
        if missing and len(missing) <= BACKFILL_LIMIT:
            try:
                with self.store.transaction() as txn:
                    self.store._archival_dirty = True
                    self.added(txn, agent_id, missing)
            except MemGPTError:
                pass
            assert self._cache is not None
            vectors = self._cache.get(conn, agent_id, name, self.store.archival_token())
        others = conn.execute(
            "SELECT embedder, count(*) FROM archival_vectors WHERE agent_id = ? AND embedder != ? GROUP BY embedder",
            (agent_id, name),
        ).fetchall()
        without = total - len(vectors) - sum(n for _, n in others)
        parts = [f"{n} embedded by {other}" for other, n in others]
        if without > 0:
            parts.append(f"{without} with no vector")
        if parts:
            agent = self.store.agent_name(agent_id)
            self.say(
                f"stale:{agent_id}:{name}",
                f"{total - len(vectors)} of agent {agent}'s {total} archival passages have no vector from the current "
                f"embedder {name} ({', '.join(parts)}); they are found by their words only until you run "
                f"`memgpt archival reembed --agent {agent}`",
            )
        return vectors

    def _mismatch(self, agent_id: str, name: str, stored: list[int], now: int | None) -> None:
        from memgpt_core.embeddings import EmbeddingMismatchError

        agent = self.store.agent_name(agent_id)
        sizes = " and ".join(str(d) for d in stored)
        current = f", and it now returns {now}" if now is not None else ""
        error = EmbeddingMismatchError(
            f"agent {agent}'s archival vectors from {name} have {sizes} dimensions{current}: the model behind that "
            "name changed; archival search is by words only until the vectors are made again (no passage is lost)",
            fix=f"memgpt archival reembed --agent {agent}",
        )
        self.say(f"mismatch:{agent_id}:{name}", str(error))

    def forget(self, agent_id: str | None = None) -> None:
        if self._cache is not None:
            self._cache.forget(agent_id)


def write_vectors(conn: sqlite3.Connection, agent_id: str, embedder: str, ids: Sequence[int], vectors: Any) -> None:
    """Store (or replace) the vectors of these archival passages, inside the caller's transaction."""
    from memgpt_core.storage.vectors import to_blob

    dim = int(vectors.shape[1]) if len(ids) else 0
    conn.executemany(
        "INSERT OR REPLACE INTO archival_vectors (id, agent_id, embedder, dim, vector) VALUES (?,?,?,?,?)",
        [(i, agent_id, embedder, dim, to_blob(v)) for i, v in zip(ids, vectors, strict=True)],
    )
