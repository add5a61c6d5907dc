"""The agent framework's own cost, with the model taken out: time per step, and recall/archival search at 100k rows.

    .venv/bin/python benchmarks/bench_agent_framework.py            # full run (100,000 rows)
    .venv/bin/python benchmarks/bench_agent_framework.py --rows 10000 --turns 50   # quick

Time per step: a ScriptedBackend answers every completion instantly with a ready-made call, so what is measured is
everything else in a step: building the prompt through the real chatml-grammar wrapper, the (cached) grammar, the
token estimate, parsing the answer with core's repair, running the function, and the step's SQLite transaction.
The backend's own time is measured separately and subtracted. Search: real SQLite FTS5 over a store filled with
100,000 messages and 100,000 archival passages, page 1 of 5 results, for one- to three-word queries.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from typing import Any

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fi", "go", "hu", "ja", "pe", "zu"]
VOCABULARY = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES if (a, b, c) != (SYLLABLES[0],) * 3][
    :5000
]
"""5,000 made-up words; text draws them with Zipf frequencies (weight 1/rank), like words in real chat."""
ZIPF = list(__import__("itertools").accumulate(1 / rank for rank in range(1, len(VOCABULARY) + 1)))
STOPWORD_RANKS = 20
"""Queries skip the 20 most frequent words, as a model searching for a name or a topic does (not "the", "and")."""


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(VOCABULARY, cum_weights=ZIPF, k=n))


def query_words(rng: random.Random) -> str:
    words = []
    while len(words) < rng.randint(1, 3):
        word = rng.choices(VOCABULARY, cum_weights=ZIPF)[0]
        if VOCABULARY.index(word) >= STOPWORD_RANKS:
            words.append(word)
    return " ".join(words)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_steps(turns: int) -> dict[str, Any]:
    from memgpt_core import plugins
    from memgpt_core.agent.testing import GrammarScriptedBackend, call_text, make_agent
    from memgpt_core.storage import Store

    answers = [
        call_text("core_memory_append", "noting", name="human", content="Likes tea.", request_heartbeat=True),
        call_text("send_message", "replying", message="Good to know! Tell me more."),
    ]
    backend_seconds = 0.0

    class TimedBackend(GrammarScriptedBackend):
        def complete(self, request: Any) -> Any:
            nonlocal backend_seconds
            started = time.perf_counter()
            try:
                return super().complete(request)
            finally:
                backend_seconds += time.perf_counter() - started

    with tempfile.TemporaryDirectory() as home, Store(os.path.join(home, "memgpt.db")) as store:
        backend = TimedBackend(default=lambda r: answers[len(backend.requests) % 2 - 1])
        backend.window = 8192
        agent = make_agent(store, backend, plugins.get_wrapper("chatml-grammar"), max_tokens=256)
        for _ in range(5):  # warm-up: imports, grammar cache, SQLite pages
            agent.user_message("warm up")
        per_step: list[float] = []
        for i in range(turns):
            before_backend = backend_seconds
            started = time.perf_counter()
            result = agent.user_message(f"Message {i}: I like tea and walking by the river.")
            elapsed = time.perf_counter() - started - (backend_seconds - before_backend)
            per_step.append(elapsed / len(result.steps))
        context_messages = len(agent.context)
        summaries = agent.record.state.get("summaries", 0)
    return {
        "turns": turns,
        "steps_per_turn": 2,
        "median_ms": statistics.median(per_step) * 1000,
        "p95_ms": percentile(per_step, 0.95) * 1000,
        "max_ms": max(per_step) * 1000,
        "context_messages_at_end": context_messages,
        "summaries": summaries,
    }


def bench_search(rows: int, queries: int) -> dict[str, Any]:
    from memgpt_core.storage import Store

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as home, Store(os.path.join(home, "memgpt.db")) as store:
        agent = store.create_agent("bench", persona="p", human="h")
        other = store.create_agent("other", persona="p", human="h")  # another agent's rows must not slow us down
        fill_started = time.perf_counter()
        with store.transaction() as conn:
            conn.executemany(
                "INSERT INTO messages (agent_id, created_at, role, content, text) VALUES (?,?,?,?,?)",
                (
                    (
                        agent.id if i % 10 else other.id,
                        f"2026-{1 + i * 12 // rows:02d}-{1 + i % 28:02d} 12:00:00",
                        "user" if i % 2 else "assistant",
                        "{}",
                        sentence(rng, rng.randint(5, 30)),
                    )
                    for i in range(rows)
                ),
            )
            conn.executemany(
                "INSERT INTO archival (agent_id, created_at, content) VALUES (?,?,?)",
                ((agent.id, "2026-01-01 00:00:00", sentence(rng, rng.randint(10, 60))) for _ in range(rows)),
            )
        fill_seconds = time.perf_counter() - fill_started
        words = [query_words(rng) for _ in range(queries)]
        timings: dict[str, list[float]] = {"recall_text": [], "recall_date": [], "archival": []}
        for text in words:
            started = time.perf_counter()
            store.search_messages(agent.id, text, page=1, page_size=5)
            timings["recall_text"].append(time.perf_counter() - started)
            started = time.perf_counter()
            store.archival_search(agent.id, text, page=1, page_size=5)
            timings["archival"].append(time.perf_counter() - started)
            month = rng.randint(1, 12)
            started = time.perf_counter()
            store.search_messages_by_date(agent.id, f"2026-{month:02d}-01", f"2026-{month:02d}-07", page=2)
            timings["recall_date"].append(time.perf_counter() - started)
    return {
        "rows": rows,
        "queries": queries,
        "fill_seconds": fill_seconds,
        **{
            name: {"median_ms": statistics.median(v) * 1000, "p95_ms": percentile(v, 0.95) * 1000}
            for name, v in timings.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    steps = bench_steps(args.turns)
    search = bench_search(args.rows, args.queries)
    if args.json:
        print(json.dumps({"steps": steps, "search": search}, indent=2))
        return
    print(f"framework time per step (model excluded), {steps['turns']} turns of 2 steps:")
    print(f"  median {steps['median_ms']:.2f} ms, p95 {steps['p95_ms']:.2f} ms, max {steps['max_ms']:.2f} ms")
    print(f"search over {search['rows']:,} messages and {search['rows']:,} passages, {search['queries']} queries:")
    for name in ("recall_text", "recall_date", "archival"):
        print(f"  {name:12} median {search[name]['median_ms']:.2f} ms, p95 {search[name]['p95_ms']:.2f} ms")


if __name__ == "__main__":
    main()
