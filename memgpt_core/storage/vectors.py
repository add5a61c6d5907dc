"""Archival vectors: float32 BLOBs in the agent database, searched by brute force with numpy, cached per agent.

Why this store: sqlite-vec and other SQLite vector extensions need ``Connection.enable_load_extension``, which several
common Python builds leave out (this project's own CI Python among them), so a design that needs them would fail
where memgpt must run. A BLOB column works on every SQLite; the vectors sit in the same file and the same
transactions as their passages, so a crash never leaves a passage and its vector out of step. An exact scan of
100,000 vectors of 256 floats is one matrix-vector product (about 10 ms on one core), which is within the search
budget at the sizes an agent's archival memory reaches, and it has no index to build, tune or corrupt.

numpy is imported by this module, which storage imports only when archival search or insertion needs vectors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

RRF_K = 60
"""Reciprocal rank fusion's constant (Cormack et al. 2009): a result's score is the sum of 1 / (RRF_K + rank)."""
PREFIX_FROM = 20_000
"""Sets larger than this are searched in two stages when the embedder declares ``prefix_dims``."""
PREFIX_POOL = 1000
"""How many passages the first stage keeps for exact scoring (at 100,000 passages the exact top 100 were 99.7% the
same, docs/benchmarks.md)."""
MEANING_WEIGHT = 0.7
"""How much of a fused score comes from meaning (the rest from words). Chosen on benchmarks/data/archival_set.json:
0.5 and 0.7 both beat rank fusion and vectors alone there; 0.7 was higher (docs/benchmarks.md has the figures)."""


def to_blob(vector: np.ndarray) -> bytes:
    """A vector as little-endian float32 bytes (what the ``vector`` columns hold)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Rows of float32 bytes to a (len(blobs), dim) array."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4")
    return matrix.reshape(len(blobs), dim).astype(np.float32, copy=False)


@dataclass
class VectorSet:
    """One agent's vectors from one embedder: row ``i`` of ``matrix`` is the vector of passage ``ids[i]``."""

    ids: np.ndarray
    matrix: np.ndarray
    max_id: int
    token: tuple[int, int]

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def nearest(
        self, query: np.ndarray, depth: int, floor: float | None, *, prefix: int | None = None
    ) -> list[tuple[int, float]]:
        """(passage id, cosine similarity) of the ``depth`` passages most similar to ``query`` (both sides unit
        length), best first, none below ``floor``.

        ``prefix``: for a model whose leading dimensions carry most of the meaning (Matryoshka-trained, like the
        shipped one), a large set is first scored on those dimensions only, and the best PREFIX_POOL get their exact
        score. That reads half the memory of a full scan, which is what a scan costs."""
        n = len(self)
        if not n:
            return []
        if prefix and prefix < self.dim and n > PREFIX_FROM:
            rough = self.matrix[:, :prefix] @ query[:prefix]  # a strided view: no copy, and BLAS reads half the rows
            pool = np.argpartition(rough, n - PREFIX_POOL)[n - PREFIX_POOL :]
            rows, scores = pool, rough[pool] + self.matrix[pool, prefix:] @ query[prefix:]
        else:
            rows, scores = None, self.matrix @ query
        depth = min(depth, len(scores))
        top = np.argpartition(scores, len(scores) - depth)[len(scores) - depth :]
        top = top[np.argsort(-scores[top], kind="stable")]
        if floor is not None:
            top = top[scores[top] >= floor]
        found = top if rows is None else rows[top]
        return [(int(i), float(s)) for i, s in zip(self.ids[found], scores[top], strict=True)]

    def similarity(self, query: np.ndarray, passage_ids: Sequence[int]) -> dict[int, float]:
        """The exact cosine similarity of these passages to ``query``; passages with no vector here are left out
        (``ids`` is sorted, so each is found by bisection)."""
        wanted = np.asarray(list(passage_ids), dtype=np.int64)
        at = np.searchsorted(self.ids, wanted)
        inside = at < len(self.ids)
        present = inside.copy()
        present[inside] = self.ids[at[inside]] == wanted[inside]
        rows = at[present]
        scores = self.matrix[rows] @ query if len(rows) else np.zeros(0, dtype=np.float32)
        return {int(i): float(v) for i, v in zip(wanted[present], scores, strict=True)}


class VectorCache:
    """Each (agent, embedder)'s vectors in memory, refreshed when the database changes.

    ``token`` is what the store says about change: its own archival write count and SQLite's ``data_version`` (which
    moves when another connection commits). While it is unchanged a search reads no vector from disk; when it moves,
    only rows newer than the cached ones are read, unless the count shows that rows went away."""

    def __init__(self) -> None:
        self._sets: dict[tuple[str, str], VectorSet] = {}

    def forget(self, agent_id: str | None = None) -> None:
        for key in [k for k in self._sets if agent_id is None or k[0] == agent_id]:
            del self._sets[key]

    def get(self, conn: sqlite3.Connection, agent_id: str, embedder: str, token: tuple[int, int]) -> VectorSet:
        key = (agent_id, embedder)
        cached = self._sets.get(key)
        if cached is not None and cached.token == token:
            return cached
        where = "FROM archival_vectors WHERE agent_id = ? AND embedder = ?"
        count, max_id = conn.execute(f"SELECT count(*), max(id) {where}", (agent_id, embedder)).fetchone()
        if cached is not None and len(cached) <= count and (max_id or 0) >= cached.max_id:
            rows = conn.execute(f"SELECT id, dim, vector {where} AND id > ? ORDER BY id", (*key, cached.max_id))
            fresh = _read(rows.fetchall(), cached.dim)
            if fresh is not None and len(cached) + len(fresh.ids) == count:
                merged = VectorSet(
                    np.concatenate([cached.ids, fresh.ids]),
                    np.concatenate([cached.matrix, fresh.matrix]) if len(fresh.ids) else cached.matrix,
                    max(cached.max_id, fresh.max_id),
                    token,
                )
                self._sets[key] = merged
                return merged
        rows = conn.execute(f"SELECT id, dim, vector {where} ORDER BY id", key).fetchall()
        loaded = _read(rows, None)
        if loaded is None:  # sizes differ within one embedder's vectors: the caller reports it from the dims
            raise DimensionsDiffer(sorted({int(r[1]) for r in rows}))
        loaded.token = token
        self._sets[key] = loaded
        return loaded


class DimensionsDiffer(Exception):
    """One embedder name has vectors of several sizes stored (the model behind the name changed)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__(dims)
        self.dims = dims


def _read(rows: Sequence[tuple[int, int, bytes]], dim: int | None) -> VectorSet | None:
    """Rows of (id, dim, blob) to a VectorSet, or None when their sizes differ from each other or from ``dim``."""
    dims = {int(r[1]) for r in rows}
    if dim is not None:
        dims.add(dim)
    if len(dims) > 1:
        return None
    size = dims.pop() if dims else 0
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = from_blobs([r[2] for r in rows], size)
    return VectorSet(ids, matrix, int(ids[-1]) if len(ids) else 0, (0, 0))


def fuse_ranks(rankings: Iterable[Sequence[int]], k: int = RRF_K) -> list[int]:
    """Reciprocal rank fusion: ids from several best-first lists, by the sum of 1 / (k + rank) over the lists.
    Ties keep the order of first appearance. Kept to compare against: it measured lower (docs/benchmarks.md)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda item: -scores[item])


def fuse_scores(
    by_words: Sequence[tuple[int, float]],
    by_meaning: Sequence[tuple[int, float]],
    similarity: Callable[[Sequence[int]], dict[int, float]],
    weight: float = MEANING_WEIGHT,
) -> list[int]:
    """Relative score fusion: each candidate's cosine similarity, scaled to 0..1 over the candidates, times
    ``weight``, plus its BM25 score divided by the best BM25 score, times ``1 - weight``; best first.

    Scores rather than ranks, because ranks invent differences: when a question's only matching word is a name, every
    note about that person ties on BM25, yet rank fusion hands them bonuses from 1/61 down by position, which buried
    the answer that the vectors had found. ``similarity(ids)`` gives the cosine of passages found only by words
    (one without a vector counts as the least similar)."""
    words = dict(by_words)
    cosines = dict(by_meaning)
    cosines.update(similarity([p for p in words if p not in cosines]))
    low = min(cosines.values(), default=0.0)
    high = max(cosines.values(), default=0.0)
    span = high - low
    best_words = max(words.values(), default=0.0) or 1.0
    fused: dict[int, float] = {}
    for passage in dict.fromkeys([*words, *(p for p, _ in by_meaning)]):
        cosine = cosines.get(passage)
        meaning = 0.0 if cosine is None else (cosine - low) / span if span > 0 else 1.0
        fused[passage] = weight * meaning + (1 - weight) * words.get(passage, 0.0) / best_words
    return sorted(fused, key=lambda passage: -fused[passage])
