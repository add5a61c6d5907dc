"""Grammar benchmark: valid calls and cut-offs under the function-call grammar, per function set and form.

On a real llama-server (its own, started through memgpt_backend_llamacpp's server helper with the bundled SmolLM2,
unless ``--url`` names one), prompts inviting each function are completed at temperature 1.0 under the grammar
built as the agent builds it: for a budget of ``n_predict`` tokens (the agent's ``max_tokens``), strings at most 600
characters. Two function sets: MemGPT's (the agent's own ``SCHEMAS``) and a community set
(``benchmarks/community_functions.json``: arrays of strings and of objects, numbers with and without bounds, enums,
nullable fields); and both forms: GBNF (sent as ``grammar``) and JSON Schema (sent as ``json_schema``, which
llama-server converts itself). A completion counts as a valid call when it is strict JSON naming a known function
with every required argument of the declared type (``call_problem``), and as cut off when the server stopped it at
``n_predict``. ``--without-grammar`` also completes each prompt with no grammar (same prompt and seed), for the
comparison. Tokens per second come from the server's own ``timings``. Grammar build time is measured cold (cache
cleared) and cached.

    .venv/bin/python benchmarks/bench_grammar.py --count 200
    .venv/bin/python benchmarks/bench_grammar.py --set community --form json_schema --count 40
    .venv/bin/python benchmarks/bench_grammar.py --url http://127.0.0.1:8089 --count 40 --without-grammar
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

from memgpt_core.agent.agent import AgentSettings
from memgpt_core.agent.functions import SCHEMAS
from memgpt_core.default_plugins.grammars import FunctionCallGrammar, call_problem
from memgpt_core.selection import MAX_STRING_CHARS

ROOT = Path(__file__).resolve().parent.parent
FORMS = ("gbnf", "json_schema")

MEMGPT_SYSTEM = """You are MemGPT, a companion with a memory that lasts. You never write plain text: every answer is \
exactly one function call in JSON, like {"function": "send_message", "params": {"inner_thoughts": "what you think \
privately", "message": "what the user reads"}}. Put your private thought in inner_thoughts, then the function's \
arguments.

Core memory (always visible to you):
<persona>I am Sam, warm and curious.</persona>
<human>Name: Chad. Likes hiking.</human>

Functions:
"""

COMMUNITY_SYSTEM = """You are a helpful assistant with tools. You never write plain text: every answer is exactly \
one tool call in JSON, like {"function": "tag_note", "params": {"inner_thoughts": "what you think privately", \
"title": "Groceries", "tags": ["shopping", "food"]}}. Put your private thought in inner_thoughts, then the \
function's arguments.

Functions:
"""

# Each function is invited by at least two prompts; the order is fixed, so every run asks the same things.
MEMGPT_PROMPTS = [
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

COMMUNITY_PROMPTS = [
    ("tag_note", "Save a note 'Trip ideas' tagged travel, summer, beach, budget, family, road trip, camping."),
    ("tag_note", "Make a note called Recipes with lots of tags: pasta, soup, vegan, quick, dinner, baking, spicy."),
    ("tag_note", "Pin a red note 'Call the bank' tagged money and urgent."),
    ("add_contacts", "Add my friends Ana (34, phone 555-0101), Ben (29), Chloe, Dev (41) and Eve to friends."),
    ("add_contacts", "Put my whole family in the address book: mum, dad, grandma, my sister Liz and my brother Tom."),
    ("add_contacts", "Add my colleague Priya Shah, phone unknown, age 38, to work."),
    ("log_expense", "I spent 12.50 euros on lunch. Worth it, 4 out of 5."),
    ("log_expense", "Log 1450 dollars for rent this month."),
    ("log_expense", "Train tickets to Leeds: 87.35 pounds, rating 2.5, note: delayed an hour."),
    ("set_reminder", "Remind me to water the plants every Monday, Wednesday and Friday, starting in 60 minutes."),
    ("set_reminder", "In 15 minutes remind me to take the cake out of the oven."),
    ("set_reminder", "Remind me about the gym on every weekday, first one in two hours."),
    ("record_readings", "Thermometer 'porch' read 12.5, 13.1, 13.8, 14.2, 15.0, 15.4 and 16.9 today."),
    ("record_readings", "Store the humidity readings 40, 42.5, 45 and 47.25 from sensor hygro-2, offset -3."),
    ("record_readings", "Record pressure readings 1013.2, 1012.8, 1011.9, 1010.4, 1009.7 for sensor baro."),
    ("tag_note", "Note: 'Books to read' with tags fiction, history, science, poetry, classics, crime, fantasy."),
    ("add_contacts", "Add Sam, Alex, Jordan, Taylor, Casey, Riley and Morgan to friends, no phones."),
    ("log_expense", "Cinema with friends cost 30 dollars, fun, a solid 5."),
    ("set_reminder", "Remind me to pay the credit card in 3 days, once."),
    ("record_readings", "Sensor 'cellar' readings: 8.1, 8.0, 7.9, 7.7, 7.6, 7.6, 7.5, 7.4, 7.3."),
]


def load_sets() -> dict[str, dict[str, Any]]:
    community = json.loads((ROOT / "benchmarks" / "community_functions.json").read_text())
    return {
        "memgpt": {"functions": SCHEMAS, "system": MEMGPT_SYSTEM, "prompts": MEMGPT_PROMPTS},
        "community": {"functions": community, "system": COMMUNITY_SYSTEM, "prompts": COMMUNITY_PROMPTS},
    }


SETS = load_sets()


def function_listing(functions: list[dict[str, Any]]) -> str:
    lines = []
    for fn in functions:
        props = fn["parameters"]["properties"]
        required = set(fn["parameters"].get("required", []))
        args = ", ".join(f"{k}: {describe(v)}{'' if k in required else ' (optional)'}" for k, v in props.items())
        lines.append(f"- {fn['name']}({args}): {fn['description']}")
    return "\n".join(lines)


def describe(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {describe(schema.get('items', {}))}"
    if schema.get("type") == "object" and "properties" in schema:
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in schema["properties"].items()) + "}"
    kind = str(schema.get("type", "any"))
    return f"{kind} or null" if schema.get("nullable") else kind


def chatml(system: str, functions: list[dict[str, Any]], user: str) -> str:
    text = system + function_listing(functions)
    return f"<|im_start|>system\n{text}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def lenient_problem(text: str, functions: list[dict[str, Any]]) -> str | None:
    """As ``call_problem``, after json-repair has had its go (what the output repair would do first)."""
    import json_repair

    try:
        obj = json_repair.loads(text)
    except Exception as exc:  # json-repair raises a variety of errors on hopeless input
        return f"unrepairable ({exc})"
    return call_problem(json.dumps(obj), functions)


def build_grammar(functions: list[dict[str, Any]], fmt: str, n_predict: int, cap: int) -> str:
    """The grammar the agent sends: every call fits in ``n_predict`` tokens, no string is longer than ``cap``."""
    return FunctionCallGrammar().build(functions, format=fmt, max_string_length=cap, max_tokens=n_predict)


def build_times(n_predict: int, cap: int, rounds_cold: int = 30, rounds_cached: int = 5000) -> dict[str, float]:
    """Median milliseconds to build the MemGPT function set's grammar: cold (cache cleared) and cached."""
    out: dict[str, float] = {}
    for fmt in FORMS:
        cold = []
        for _ in range(rounds_cold):
            FunctionCallGrammar._cache.clear()
            start = time.perf_counter()
            build_grammar(SCHEMAS, fmt, n_predict, cap)
            cold.append(time.perf_counter() - start)
        cached = []
        for _ in range(rounds_cached):
            start = time.perf_counter()
            build_grammar(SCHEMAS, fmt, n_predict, cap)
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
    url: str,
    runs: list[tuple[str, str]],
    *,
    count: int,
    n_predict: int,
    cap: int,
    workers: int,
    out: Path,
    minutes: float | None,
    without_grammar: bool,
) -> dict[str, Any]:
    """Complete ``count`` prompts for every (set, form) in ``runs``; the rows go to ``out`` as JSON lines."""
    grammars = {(name, fmt): build_grammar(SETS[name]["functions"], fmt, n_predict, cap) for name, fmt in runs}
    modes = [*(f"{name}/{fmt}" for name, fmt in runs)]
    if without_grammar:
        modes += [f"{name}/free" for name in dict.fromkeys(name for name, _ in runs)]
    session = requests.Session()
    session.trust_env = False  # loopback traffic must never go through a proxy from the environment
    started = time.time()
    deadline = started + minutes * 60 if minutes else None
    finished = itertools.count(1)
    total = count * len(modes)

    def one(i: int, mode: str) -> dict[str, Any]:
        name, form = mode.split("/")
        chosen = SETS[name]
        invited, prompt = chosen["prompts"][i % len(chosen["prompts"])]
        body: dict[str, Any] = {
            "prompt": chatml(chosen["system"], chosen["functions"], prompt),
            "n_predict": n_predict,
            "temperature": 1.0,
            "seed": 1000 + i,
            "cache_prompt": True,
            "stop": ["<|im_end|>"],
        }
        if form == "gbnf":
            body["grammar"] = grammars[(name, form)]
        elif form == "json_schema":
            body["json_schema"] = json.loads(grammars[(name, form)])
        result = complete(session, url, body)
        text = result["content"]
        row = {
            "i": i,
            "set": name,
            "mode": form,
            "invited": invited,
            "seed": body["seed"],
            "text": text,
            "problem": call_problem(text, chosen["functions"]),
            "lenient_problem": lenient_problem(text, chosen["functions"]),
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
        print(
            f"[{time.time() - started:7.0f}s] {done}/{total} {mode:22} {row['predicted_n']:4} tok "
            f"{'CUT OFF ' if row['cut_off'] else ''}{row['problem'] or 'valid'}",
            flush=True,
        )
        return row

    def group(i: int) -> list[dict[str, Any]]:
        # The same prompt and seed in every mode, one after the other (rotating which goes first), so all see the
        # same load on a shared machine. Past the time limit no new group starts; groups are never split.
        if deadline is not None and time.time() > deadline:
            return []
        k = i % len(modes)
        return [one(i, mode) for mode in modes[k:] + modes[:k]]

    rows: list[dict[str, Any]] = []
    with out.open("w") as sink, ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(group, range(count)):
            for row in done:
                rows.append(row)
                sink.write(json.dumps(row) + "\n")
            sink.flush()
    return summarize(rows, time.time() - started)


def summarize(rows: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    summary: dict[str, Any] = {"wall_s": wall, "runs": {}}
    for key in dict.fromkeys(f"{r['set']}/{r['mode']}" for r in rows):
        mine = [r for r in rows if f"{r['set']}/{r['mode']}" == key]
        tokens = sum(r["predicted_n"] for r in mine)
        ms = sum(r["predicted_ms"] for r in mine)
        summary["runs"][key] = {
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


FORM_LABELS = {"gbnf": "GBNF", "json_schema": "JSON Schema", "free": "no grammar"}


def markdown(summary: dict[str, Any], build: dict[str, float], args: argparse.Namespace) -> str:
    runs = summary.get("runs", {})
    lines = []
    if runs:
        lines += [
            "| set, form | completions | valid calls | valid after json-repair "
            f"| cut off at n_predict={args.n_predict} | longest, tokens | mean tokens | tokens/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, r in runs.items():
            name, form = key.split("/")
            lines.append(
                f"| {name}, {FORM_LABELS[form]} | {r['n']} | {r['valid']}/{r['n']} ({pct(r['valid'], r['n'])}) "
                f"| {r['valid_lenient']} | {r['cut_off']} | {r['max_tokens']} | {r['mean_tokens']:.0f} "
                f"| {r['tokens_per_s']:.2f} |"
            )
        lines.append("")
        for key, r in runs.items():
            lines.append(f"- {key}: called {json.dumps(r['functions'], sort_keys=True)}; {json.dumps(r['problems'])}")
        lines.append("")
        for name in dict.fromkeys(key.split("/")[0] for key in runs):
            for fmt in FORMS:
                lines.append(f"Bounds, {name} set, {FORM_LABELS[fmt]}: {json.dumps(bounds(name, fmt, args))}")
        lines.append("")
    lines += [
        "| grammar build (MemGPT's 8 functions) | cold (median) | cached (median) | cached (p99) | cached (max) |",
        "|---|---|---|---|---|",
        *(
            f"| {FORM_LABELS[f]} | {build[f + '_cold_ms']:.3f} ms | {build[f + '_cached_ms'] * 1000:.1f} µs "
            f"| {build[f + '_cached_p99_ms'] * 1000:.1f} µs | {build[f + '_cached_max_ms']:.2f} ms |"
            for f in FORMS
        ),
    ]
    return "\n".join(lines)


def bounds(name: str, fmt: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per function of a set, as built for ``fmt``: the cap on its top-level strings and each array's item cap."""
    from memgpt_core.default_plugins.grammars import call_schema

    schema = call_schema(SETS[name]["functions"], max_string_length=args.cap, max_tokens=args.n_predict, format=fmt)
    out = {}
    for option in schema.get("anyOf", [schema]):
        params = option["properties"]["params"]["properties"]
        row: dict[str, Any] = {"strings": params["inner_thoughts"]["maxLength"]}
        for key, sub in params.items():
            if sub.get("type") == "array":
                row[key] = sub.get("maxItems")
        out[option["title"]] = row
    return out


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use this llama-server instead of starting one")
    parser.add_argument("--count", type=int, default=200, help="completions per set and form (default 200)")
    parser.add_argument("--set", choices=("memgpt", "community", "both"), default="both", help="function set(s)")
    parser.add_argument("--form", choices=("gbnf", "json_schema", "both"), default="both", help="grammar form(s)")
    parser.add_argument(
        "--without-grammar", action="store_true", help="also complete every prompt with no grammar, to compare"
    )
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

    names = ["memgpt", "community"] if args.set == "both" else [args.set]
    forms = list(FORMS) if args.form == "both" else [args.form]
    runs = [(name, fmt) for name in names for fmt in forms]
    build = build_times(args.n_predict, args.cap)
    summary: dict[str, Any] = {}
    if not args.build_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        options = {
            "count": args.count,
            "n_predict": args.n_predict,
            "cap": args.cap,
            "workers": args.workers,
            "out": args.out,
            "minutes": args.minutes,
            "without_grammar": args.without_grammar,
        }
        if args.url:
            summary = run(args.url.rstrip("/"), runs, **options)
        else:
            from memgpt_backend_llamacpp.server import LlamaServer

            with LlamaServer(ctx_size=4096 * args.workers, parallel=args.workers, threads=args.threads) as server:
                server.start(progress=lambda message: print(message, file=sys.stderr))
                summary = run(server.url, runs, **options)
    print(json.dumps({"summary": summary, "build": build}, indent=2))
    print()
    print(markdown(summary, build, args))


if __name__ == "__main__":
    main()
