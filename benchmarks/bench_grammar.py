"""Grammar benchmark: valid-call rate with and without the function-call grammar, its speed cost, and build time.

On a real llama-server (its own, started through memgpt_backend_llamacpp's server helper with the bundled SmolLM2,
unless ``--url`` names one), the same prompts are completed with the GBNF grammar and without it, at temperature 1.0,
interleaved so that both see the same machine load. A completion counts as a valid call when it is strict JSON naming
a known function with every required argument of the declared type (``call_problem``); without the grammar, a
lenient count (json-repair first, as the output repair would) is given too. Tokens per second come from the server's
own ``timings``. The grammar is built as the agent builds it: for a budget of ``n_predict`` tokens (the agent's
``max_tokens``), strings at most 600 characters. Grammar build time is measured cold (cache cleared) and cached.

    .venv/bin/python benchmarks/bench_grammar.py --count 200
    .venv/bin/python benchmarks/bench_grammar.py --url http://127.0.0.1:8089 --count 40
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from memgpt_core.agent.agent import MAX_STRING_CHARS, AgentSettings
from memgpt_core.agent.functions import SCHEMAS
from memgpt_core.default_plugins.grammars import FunctionCallGrammar, call_problem

ROOT = Path(__file__).resolve().parent.parent
# The schemas the agent really sends.
FUNCTIONS = SCHEMAS

SYSTEM = """You are MemGPT, a companion with a memory that lasts. You never write plain text: every answer is exactly \
one function call in JSON, like {"function": "send_message", "params": {"inner_thoughts": "what you think privately", \
"message": "what the user reads"}}. Put your private thought in inner_thoughts, then the function's arguments.

Core memory (always visible to you):
<persona>I am Sam, warm and curious.</persona>
<human>Name: Chad. Likes hiking.</human>

Functions:
"""

# Each function is invited by at least two prompts; the order is fixed, so every run asks the same things.
PROMPTS = [
    ("send_message", "Hi there! How are you today?"),
    ("send_message", "Tell me a short joke, please."),
    ("pause_heartbeats", "Please stay quiet for 20 minutes, I'm in a meeting."),
    ("pause_heartbeats", "Stop pinging me for an hour."),
    ("core_memory_append", "Remember this about me: I'm allergic to peanuts."),
    ("core_memory_append", "Add to your persona that you love jazz."),
    ("core_memory_replace", "My name is not Chad, it's Brad. Fix your memory."),
    ("core_memory_replace", "I stopped hiking; I swim now. Update what you know about me."),
    ("conversation_search", "What did I tell you about my sister earlier? Search our chat."),
    ("conversation_search", "Look back through our conversation for the word 'vacation'."),
    ("conversation_search_date", "What did we talk about between 2024-03-01 and 2024-03-07?"),
    ("conversation_search_date", "Show me our messages from January 2024."),
    ("archival_memory_insert", "Store this for the long term: the wifi password is 'otter42'."),
    ("archival_memory_insert", "Please archive this: my passport expires in May 2027."),
    ("archival_memory_search", "Search your archive for anything about my passport."),
    ("archival_memory_search", "Check your long-term memory: what's the wifi password?"),
    ("send_message", "Good night!"),
    ("core_memory_append", "Note that my birthday is on 3 June."),
    ("archival_memory_search", "Find the notes you archived about recipes."),
    ("conversation_search", "Did I mention a dentist appointment before? Search for 'dentist'."),
]


def function_listing(functions: list[dict[str, Any]]) -> str:
    lines = []
    for fn in functions:
        props = fn["parameters"]["properties"]
        required = set(fn["parameters"].get("required", []))
        args = ", ".join(f"{k}: {v.get('type')}{'' if k in required else ' (optional)'}" for k, v in props.items())
        lines.append(f"- {fn['name']}({args}): {fn['description']}")
    return "\n".join(lines)


def chatml(user: str) -> str:
    system = SYSTEM + function_listing(FUNCTIONS)
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def lenient_problem(text: str) -> str | None:
    """As ``call_problem``, after json-repair has had its go (what the output repair would do first)."""
    import json_repair

    try:
        obj = json_repair.loads(text)
    except Exception as exc:  # json-repair raises a variety of errors on hopeless input
        return f"unrepairable ({exc})"
    return call_problem(json.dumps(obj), FUNCTIONS)


def build_grammar(fmt: str, n_predict: int, cap: int) -> str:
    """The grammar the agent sends: every call fits in ``n_predict`` tokens, no string is longer than ``cap``."""
    return FunctionCallGrammar().build(FUNCTIONS, format=fmt, max_string_length=cap, max_tokens=n_predict)


def build_times(n_predict: int, cap: int, rounds_cold: int = 30, rounds_cached: int = 5000) -> dict[str, float]:
    """Median milliseconds to build the MemGPT function set's grammar: cold (cache cleared) and cached."""
    out: dict[str, float] = {}
    for fmt in ("gbnf", "json_schema"):
        cold = []
        for _ in range(rounds_cold):
            FunctionCallGrammar._cache.clear()
            start = time.perf_counter()
            build_grammar(fmt, n_predict, cap)
            cold.append(time.perf_counter() - start)
        cached = []
        for _ in range(rounds_cached):
            start = time.perf_counter()
            build_grammar(fmt, n_predict, cap)
            cached.append(time.perf_counter() - start)
        out[f"{fmt}_cold_ms"] = statistics.median(cold) * 1000
        out[f"{fmt}_cached_ms"] = statistics.median(cached) * 1000
        out[f"{fmt}_cached_p99_ms"] = statistics.quantiles(cached, n=100)[98] * 1000
        out[f"{fmt}_cached_max_ms"] = max(cached) * 1000
    return out


def complete(session: requests.Session, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = session.post(f"{url}/completion", json=body, timeout=1800)
    response.raise_for_status()
    return response.json()


def run(
    url: str, count: int, n_predict: int, cap: int, workers: int, out: Path, minutes: float | None
) -> dict[str, Any]:
    grammar = build_grammar("gbnf", n_predict, cap)
    session = requests.Session()
    session.trust_env = False  # loopback traffic must never go through a proxy from the environment
    started = time.time()
    deadline = started + minutes * 60 if minutes else None
    finished = itertools.count(1)

    def one(i: int, mode: str) -> dict[str, Any]:
        invited, prompt = PROMPTS[i % len(PROMPTS)]
        body: dict[str, Any] = {
            "prompt": chatml(prompt),
            "n_predict": n_predict,
            "temperature": 1.0,
            "seed": 1000 + i,
            "cache_prompt": True,
            "stop": ["<|im_end|>"],
        }
        if mode == "grammar":
            body["grammar"] = grammar
        result = complete(session, url, body)
        text = result["content"]
        row = {
            "i": i,
            "mode": mode,
            "invited": invited,
            "seed": body["seed"],
            "text": text,
            "problem": call_problem(text, FUNCTIONS),
            "lenient_problem": lenient_problem(text),
            "stop_type": result.get("stop_type"),
            # llama-server versions report a cut-off at n_predict in different fields; any of them counts.
            "cut_off": bool(
                result.get("stop_type") == "limit" or result.get("stopped_limit") or result.get("truncated")
            ),
            "predicted_n": result["timings"]["predicted_n"],
            "predicted_ms": result["timings"]["predicted_ms"],
        }
        try:
            row["called"] = json.loads(text).get("function")
        except (ValueError, AttributeError):
            row["called"] = None
        done = next(finished)
        print(f"[{time.time() - started:7.0f}s] {done}/{2 * count} {mode:7} {row['problem'] or 'valid'}", flush=True)
        return row

    def pair(i: int) -> list[dict[str, Any]]:
        # The same prompt and seed in both modes, one after the other (alternating which goes first), so both see
        # the same load on a shared machine. Past the time limit no new pair starts; pairs are never split.
        if deadline is not None and time.time() > deadline:
            return []
        return [one(i, mode) for mode in (("grammar", "free") if i % 2 == 0 else ("free", "grammar"))]

    rows: list[dict[str, Any]] = []
    with out.open("w") as sink, ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(pair, range(count)):
            for row in done:
                rows.append(row)
                sink.write(json.dumps(row) + "\n")
            sink.flush()
    return summarize(rows, time.time() - started)


def summarize(rows: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    summary: dict[str, Any] = {"wall_s": wall}
    for mode in ("grammar", "free"):
        mine = [r for r in rows if r["mode"] == mode]
        tokens = sum(r["predicted_n"] for r in mine)
        ms = sum(r["predicted_ms"] for r in mine)
        summary[mode] = {
            "n": len(mine),
            "valid": sum(r["problem"] is None for r in mine),
            "valid_lenient": sum(r["lenient_problem"] is None for r in mine),
            "cut_off": sum(r["cut_off"] for r in mine),
            "max_tokens": max((r["predicted_n"] for r in mine), default=0),
            "tokens": tokens,
            "tokens_per_s": tokens / (ms / 1000) if ms else 0.0,
            "mean_tokens": tokens / len(mine) if mine else 0.0,
            "functions": dict(Counter(r["called"] for r in mine if r["problem"] is None)),
            "problems": dict(Counter((r["problem"] or "valid").split(" (")[0].split(":")[0] for r in mine)),
        }
    return summary


def markdown(summary: dict[str, Any], build: dict[str, float], args: argparse.Namespace) -> str:
    g, f = summary.get("grammar"), summary.get("free")
    lines = []
    if g and f:
        lines += [
            "| | with grammar | without grammar |",
            "|---|---|---|",
            f"| completions | {g['n']} | {f['n']} |",
            f"| valid calls (strict JSON, known function, required args typed) "
            f"| {g['valid']} ({pct(g['valid'], g['n'])}) | {f['valid']} ({pct(f['valid'], f['n'])}) |",
            f"| valid after json-repair | {g['valid_lenient']} ({pct(g['valid_lenient'], g['n'])})"
            f" | {f['valid_lenient']} ({pct(f['valid_lenient'], f['n'])}) |",
            f"| cut off at n_predict={args.n_predict} | {g['cut_off']} | {f['cut_off']} |",
            f"| tokens generated (mean per completion) | {g['tokens']} ({g['mean_tokens']:.0f}) "
            f"| {f['tokens']} ({f['mean_tokens']:.0f}) |",
            f"| longest completion, tokens | {g['max_tokens']} | {f['max_tokens']} |",
            f"| generation speed, tokens/s (server timings) | {g['tokens_per_s']:.2f} | {f['tokens_per_s']:.2f} |",
            "",
            f"String caps under the grammar (characters per free string): {json.dumps(string_caps(args))}",
            f"Functions called under the grammar: {json.dumps(g['functions'], sort_keys=True)}",
            f"With the grammar, what went wrong: {json.dumps(g['problems'], sort_keys=True)}",
            f"Without the grammar, what went wrong: {json.dumps(f['problems'], sort_keys=True)}",
            "",
        ]
    lines += [
        "| grammar build (MemGPT's 8 functions) | cold (median) | cached (median) | cached (p99) | cached (max) |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {build[f + '_cold_ms']:.3f} ms | {build[f + '_cached_ms'] * 1000:.1f} µs "
            f"| {build[f + '_cached_p99_ms'] * 1000:.1f} µs | {build[f + '_cached_max_ms']:.2f} ms |"
            for label, f in (("GBNF", "gbnf"), ("JSON Schema", "json_schema"))
        ),
    ]
    return "\n".join(lines)


def string_caps(args: argparse.Namespace) -> dict[str, int]:
    """Each function's string cap in the grammar the run used (read from the JSON Schema form of the same build)."""
    schema = json.loads(build_grammar("json_schema", args.n_predict, args.cap))
    return {o["title"]: o["properties"]["params"]["properties"]["inner_thoughts"]["maxLength"] for o in schema["anyOf"]}


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use this llama-server instead of starting one")
    parser.add_argument("--count", type=int, default=200, help="completions per mode (default 200)")
    default_budget = AgentSettings().max_tokens
    parser.add_argument(
        "--n-predict",
        type=int,
        default=default_budget,
        help=f"tokens per completion, and the grammar's budget (default {default_budget}, the agent's max_tokens)",
    )
    parser.add_argument(
        "--cap",
        type=int,
        default=MAX_STRING_CHARS,
        help=f"max_string_length for the grammar (default {MAX_STRING_CHARS}, as the agent)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="llama-server threads (default 1: on a shared 2-core machine, faster)"
    )
    parser.add_argument("--workers", type=int, default=4, help="parallel requests (the server's slots, default 4)")
    parser.add_argument("--minutes", type=float, help="start no new prompt after this long; report what finished")
    parser.add_argument("--build-only", action="store_true", help="only time the grammar build")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "grammar.jsonl")
    args = parser.parse_args()

    build = build_times(args.n_predict, args.cap)
    summary: dict[str, Any] = {}
    if not args.build_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.url:
            summary = run(
                args.url.rstrip("/"), args.count, args.n_predict, args.cap, args.workers, args.out, args.minutes
            )
        else:
            from memgpt_backend_llamacpp.server import LlamaServer

            with LlamaServer(ctx_size=4096 * args.workers, parallel=args.workers, threads=args.threads) as server:
                server.start(progress=lambda message: print(message, file=sys.stderr))
                summary = run(server.url, args.count, args.n_predict, args.cap, args.workers, args.out, args.minutes)
    print(json.dumps({"summary": summary, "build": build}, indent=2))
    print()
    print(markdown(summary, build, args))


if __name__ == "__main__":
    main()
