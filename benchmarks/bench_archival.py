"""Archival memory: recall@5 by words (BM25) against hybrid search, per embedder; speed at 100,000 passages.

    .venv/bin/python benchmarks/bench_archival.py                      # everything (about 4 minutes on 2 cores)
    .venv/bin/python benchmarks/bench_archival.py --skip-llama         # without the llama-server embedder
    .venv/bin/python benchmarks/bench_archival.py --rows 10000         # a quicker speed run

Recall: the labelled set of benchmarks/data/archival_set.json (1,200 notes about 50 people, 160 questions: 120
paraphrased, 40 with a word of the note; make_archival_set.py explains it) is inserted into a fresh store through
``Store.archival_insert_many``, embedded by the embedder under test, and each question is asked through
``Store.archival_search`` (page 1, 5 results), the same call the agent's archival_memory_search makes. A question
counts when its note is among the 5. Embedders: none (BM25 only), the shipped WordLlama model, and SmolLM2-135M (the
embedded default's model) served by llama-server with ``--embeddings --pooling mean``.

Speed: 100,000 notes of the same kind (``make_archival_set.people`` with surnames) inserted in batches of 1,000 with
the shipped embedder, then 200 paraphrased questions. Hybrid search is timed with the vectors cached (every search
after the first), and the first search, which reads the vectors from SQLite, is reported on its own. The same
questions are timed again with an exact scan of all 256 dimensions instead of the two-stage search (a first pass on
the leading 128), with how much of the exact top 100 the two-stage search keeps; and by words only (no embedder).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "data"))

import make_archival_set as dataset  # noqa: E402

from memgpt_core.storage import Store  # noqa: E402
from memgpt_core.storage.archival import HybridArchivalIndex  # noqa: E402


class VectorsOnly(HybridArchivalIndex):
    """The hybrid index with the words side switched off: what vectors alone would find."""

    def _bm25(self, conn: Any, agent_id: str, query: str) -> list[tuple[int, float]]:
        return []


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def recall(embedder: Any, data: dict[str, Any], *, mode: str = "score") -> dict[str, Any]:
    """``mode``: "score" (the default fusion), "rank" (reciprocal rank fusion) or "vectors" (no words side)."""
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home) / "memgpt.db", embedder=embedder)
        if mode != "score":
            index = VectorsOnly if mode == "vectors" else HybridArchivalIndex
            store.hybrid = index(store, embedder, fusion="rank" if mode == "rank" else "score")
            store.archival_index = store.hybrid
        agent = store.create_agent("bench", persona="p", human="h")
        texts = [p["text"] for p in data["passages"]]
        started = time.perf_counter()
        store.archival_insert_many(agent.id, texts)
        insert_seconds = time.perf_counter() - started
        hits: dict[str, list[bool]] = {"paraphrase": [], "keyword": []}
        search_times = []
        for question in data["queries"]:
            wanted = {texts[i] for i in question["relevant"]}
            started = time.perf_counter()
            page = store.archival_search(agent.id, question["text"], page=1, page_size=5)
            search_times.append(time.perf_counter() - started)
            hits[question["sort"]].append(any(text in wanted for _, text in page.items))
        store.close()
    every = hits["paraphrase"] + hits["keyword"]
    return {
        "recall@5": sum(every) / len(every),
        "paraphrase": sum(hits["paraphrase"]) / len(hits["paraphrase"]),
        "keyword": sum(hits["keyword"]) / len(hits["keyword"]),
        "questions": len(every),
        "insert_ms_per_passage": insert_seconds * 1000 / len(texts),
        "search_median_ms": statistics.median(search_times) * 1000,
    }


def embed_time(embedder: Any, texts: list[str]) -> float:
    """Milliseconds per passage, embedding ``texts`` in the batches the store uses."""
    embedder.embed(texts[:8])  # load the model / warm the connection
    started = time.perf_counter()
    embedder.embed(texts)
    return (time.perf_counter() - started) * 1000 / len(texts)


def similarity_floor(embedder: Any, data: dict[str, Any]) -> dict[str, float]:
    """Cosine scores of each question against its own note and against notes of other kinds (for the floor)."""
    texts = [p["text"] for p in data["passages"]]
    kinds = [p["kind"] for p in data["passages"]]
    notes = embedder.embed(texts)
    questions = embedder.embed([q["text"] for q in data["queries"]])
    right, unrelated = [], []
    for q, vector in zip(data["queries"], questions, strict=True):
        scores = notes @ vector
        target = q["relevant"][0]
        right.append(float(scores[target]))
        unrelated += [float(s) for s, k in zip(scores, kinds, strict=True) if k != kinds[target]]
    return {
        "answer_p10": percentile(right, 0.10),
        "answer_median": statistics.median(right),
        "other_kind_p99": percentile(unrelated, 0.99),
        "other_kind_median": statistics.median(unrelated),
    }


def speed(embedder: Any, rows: int, queries: int) -> dict[str, Any]:
    rng = random.Random(7)
    names = dataset.people(-(-rows // len(dataset.KINDS)), rng)
    notes = dataset.passages(names, rng, limit=rows)
    texts = [n["text"] for n in notes]
    questions = [q["text"] for q in dataset.questions(notes, rng, queries, 0)]
    result: dict[str, Any] = {"rows": rows, "queries": queries}
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home) / "memgpt.db", embedder=embedder)
        agent = store.create_agent("bench", persona="p", human="h")
        started = time.perf_counter()
        for start in range(0, rows, 1000):
            store.archival_insert_many(agent.id, texts[start : start + 1000])
        seconds = time.perf_counter() - started
        result["insert_per_second"] = rows / seconds
        started = time.perf_counter()
        store.archival_search(agent.id, questions[0])
        result["first_search_ms"] = (time.perf_counter() - started) * 1000
        hybrid = []
        for text in questions:
            started = time.perf_counter()
            store.archival_search(agent.id, text, page=1, page_size=5)
            hybrid.append(time.perf_counter() - started)
        # The same searches with an exact scan of all 256 dimensions (no first pass on the leading 128), and how
        # much of the exact top 100 the two-stage search keeps.
        exact_embedder = type(embedder)()
        exact_embedder.prefix_dims = None
        store.hybrid = HybridArchivalIndex(store, exact_embedder)
        store.archival_index = store.hybrid
        store.archival_search(agent.id, questions[0])
        exact = []
        for text in questions:
            started = time.perf_counter()
            store.archival_search(agent.id, text, page=1, page_size=5)
            exact.append(time.perf_counter() - started)
        vectors, _ = store.hybrid._vectors(store.conn, agent.id)
        overlap = []
        for vector in embedder.embed(questions):
            fast = {p for p, _ in vectors.nearest(vector, 100, None, prefix=embedder.prefix_dims)}
            full = {p for p, _ in vectors.nearest(vector, 100, None)}
            overlap.append(len(fast & full) / 100)
        result["top100_kept"] = statistics.mean(overlap)
        store.close()
        words_only = Store(Path(home) / "memgpt.db", embedder=None)
        bm25 = []
        for text in questions:
            started = time.perf_counter()
            words_only.archival_search(agent.id, text, page=1, page_size=5)
            bm25.append(time.perf_counter() - started)
        words_only.close()
    for label, values in (("hybrid", hybrid), ("hybrid_exact", exact), ("bm25", bm25)):
        result[label] = {
            "median_ms": statistics.median(values) * 1000,
            "p95_ms": percentile(values, 0.95) * 1000,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-llama", action="store_true", help="leave out the llama-server (SmolLM2) embedder")
    parser.add_argument("--llama-url", help="a llama-server already started with --embeddings --pooling mean")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()

    from memgpt_core.embeddings import BackendEmbedder, ShippedEmbedder

    data = json.loads((HERE / "data" / "archival_set.json").read_text("utf-8"))
    texts = [p["text"] for p in data["passages"]]
    shipped = ShippedEmbedder()
    report: dict[str, Any] = {"recall": {}, "embed_ms_per_passage": {}}
    report["recall"]["bm25"] = recall(None, data)
    report["recall"]["hybrid, wordllama"] = recall(shipped, data)
    report["recall"]["hybrid with rank fusion, wordllama"] = recall(shipped, data, mode="rank")
    report["recall"]["vectors only, wordllama"] = recall(shipped, data, mode="vectors")
    report["embed_ms_per_passage"]["wordllama"] = embed_time(shipped, texts)
    report["floor_wordllama"] = similarity_floor(shipped, data)

    server = None
    if not args.skip_llama:
        from memgpt_backend_llamacpp import LlamaCppBackend

        url = args.llama_url
        if url is None:
            from memgpt_backend_llamacpp.server import LlamaServer

            server = LlamaServer(ctx_size=4096, parallel=1, threads=1, extra_args=["--embeddings", "--pooling", "mean"])
            server.start()
            url = server.url
        try:
            llama = BackendEmbedder(LlamaCppBackend(url))
            report["recall"]["hybrid, llama-server SmolLM2"] = recall(llama, data)
            report["recall"]["vectors only, llama-server SmolLM2"] = recall(llama, data, mode="vectors")
            report["embed_ms_per_passage"]["llama-server SmolLM2 (1 thread)"] = embed_time(llama, texts[:320])
        finally:
            if server is not None:
                server.stop()

    report["speed"] = speed(shipped, args.rows, args.queries)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"recall@5 over {len(data['queries'])} questions, {len(texts)} passages")
    print("| search | all | paraphrased | keyword | insert ms/passage | search median ms |")
    print("|---|---|---|---|---|---|")
    for name, r in report["recall"].items():
        print(
            f"| {name} | {r['recall@5']:.2f} | {r['paraphrase']:.2f} | {r['keyword']:.2f} | "
            f"{r['insert_ms_per_passage']:.3f} | {r['search_median_ms']:.2f} |"
        )
    print("\nembedding time per passage")
    for name, ms in report["embed_ms_per_passage"].items():
        print(f"  {name}: {ms:.3f} ms")
    floor = report["floor_wordllama"]
    print(
        f"\nwordllama cosine: answer note p10 {floor['answer_p10']:.2f}, median {floor['answer_median']:.2f}; "
        f"notes of other kinds median {floor['other_kind_median']:.2f}, p99 {floor['other_kind_p99']:.2f}"
    )
    s = report["speed"]
    print(f"\nspeed at {s['rows']:,} passages, {s['queries']} questions")
    print(f"  insert with wordllama embedding: {s['insert_per_second']:,.0f} passages/s")
    print(f"  first hybrid search (reads the vectors): {s['first_search_ms']:.0f} ms")
    print(f"  hybrid search: median {s['hybrid']['median_ms']:.2f} ms, p95 {s['hybrid']['p95_ms']:.2f} ms")
    exact = s["hybrid_exact"]
    print(
        f"  hybrid, exact scan: median {exact['median_ms']:.2f} ms, p95 {exact['p95_ms']:.2f} ms"
        f" (the two-stage search kept {s['top100_kept']:.1%} of its top 100)"
    )
    print(f"  BM25 only:     median {s['bm25']['median_ms']:.2f} ms, p95 {s['bm25']['p95_ms']:.2f} ms")


if __name__ == "__main__":
    main()
