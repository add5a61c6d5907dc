"""A 60-turn conversation with our agent in a small context: prompt tokens per turn, and the summaries that keep it in.

Starts its own llama-server (SmolLM2-135M-Instruct, ``--ctx`` 2048 by default, one slot) and the recording proxy of
benchmarks/peer/proxy.py in front of it, then sends 60 scripted user messages, one ``memgpt send --agent NAME --json``
process each, to one agent in a fresh ``MEMGPT_HOME``. Per turn it records, from the server's own answers: the
largest prompt of the turn (``tokens_evaluated``: the whole prompt, cached or not), prompt plus generated tokens, the
tokens actually evaluated (``prompt_n``), and whether the server refused a prompt as too long (HTTP 400); from the
agent's events: replies, errors, and ``status`` events announcing a summary.

    .venv/bin/python benchmarks/bench_agent_longrun.py --turns 60 --ctx 2048
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".bench" / "longrun"
sys.path.insert(0, str(ROOT / "benchmarks" / "peer"))
from proxy import Proxy  # noqa: E402 - a sibling script, not a package

# Facts and questions in turn; long enough that a 2048-token window fills within a few turns.
FACTS = [
    "I grew up in a small fishing town on the coast, where my grandfather repaired boats and taught me to sail "
    "before I could ride a bicycle.",
    "These days I work as a hospital pharmacist. The night shifts are hard, but I like the quiet hours when the "
    "wards are calm and I can check every prescription twice.",
    "My partner Tomasz is a carpenter. Last spring he built us a kitchen table out of an old oak door we found "
    "at a flea market.",
    "We have a grumpy grey cat called Pixel who only likes sleeping on freshly washed laundry and hates the "
    "vacuum cleaner more than anything.",
    "I am learning Japanese, slowly, with flash cards on the bus. I can read hiragana now, but katakana still "
    "trips me up every single time.",
    "On weekends I run along the river. My goal this year is to finish a half marathon in under two hours, "
    "and I am about ten minutes away from that.",
    "My favourite book is a long novel about a lighthouse keeper. I reread it every winter, when the evenings "
    "get dark early.",
    "I am allergic to peanuts, so restaurants are always a bit stressful, and I carry an adrenaline pen in my "
    "bag wherever I go.",
    "My brother Marek lives in Edinburgh and teaches physics at a secondary school. We call each other every "
    "Sunday evening.",
    "I keep a small vegetable garden on the balcony: tomatoes, basil, chillies and one very ambitious courgette "
    "plant that has taken over half the space.",
]
QUESTIONS = [
    "What do you remember about where I grew up?",
    "What is my job, and which shifts do I work?",
    "Who is Tomasz, and what did he build?",
    "What is my cat called?",
    "Which language am I learning?",
    "What is my running goal for this year?",
    "Am I allergic to anything?",
    "Where does my brother live?",
    "What grows on my balcony?",
    "Tell me one thing about me that you find interesting.",
]


def script(turns: int) -> list[str]:
    """Facts and questions interleaved, repeated with a turn number so that no two messages are identical."""
    pool: list[str] = []
    for fact, question in zip(FACTS, QUESTIONS, strict=True):
        pool += [fact, question]
    return [f"{pool[i % len(pool)]}" + (f" (message {i + 1})" if i >= len(pool) else "") for i in range(turns)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--wrapper", default="chatml-grammar")
    parser.add_argument("--turn-timeout", type=float, default=240.0)
    # One thread: on this shared 2-core machine other llama-servers run too, and llama.cpp's threads spin-wait on
    # each other, so two threads per server ran ~8x slower than one (measured: 4.9 vs 32-40 tokens/s generated).
    parser.add_argument("--threads", type=int, default=1, help="llama-server --threads")
    parser.add_argument("--upstream", help="reuse a running llama-server (its context must be --ctx)")
    parser.add_argument("--out", default=str(SCRATCH / "longrun.jsonl"))
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        out.write_text("")
        server = None
        upstream = args.upstream
        if not upstream:
            from memgpt_backend_llamacpp.server import LlamaServer

            server = LlamaServer(ctx_size=args.ctx, parallel=1, threads=args.threads).start()
            upstream = server.url
        proxy = Proxy(upstream, request_timeout=args.turn_timeout).start()
        home = SCRATCH / f"home-{int(time.time())}"
        home.mkdir(parents=True)
        env = dict(os.environ, MEMGPT_HOME=str(home), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        log = open(SCRATCH / "longrun.log", "w")  # noqa: SIM115 - held for the whole run
        try:
            for turn, text in enumerate(script(args.turns), start=1):
                start_index = len(proxy.recorder)
                cmd = [
                    str(ROOT / ".venv" / "bin" / "memgpt"), "send", "--agent", "longrun", "--json",
                    "--backend", "llamacpp", "--endpoint", proxy.url, "--model", args.wrapper,
                    "--context-window", str(args.ctx), text,
                ]  # fmt: skip
                started = time.monotonic()
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.turn_timeout)
                    stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
                except subprocess.TimeoutExpired as exc:
                    stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                    stderr, rc = "turn timeout", None
                seconds = time.monotonic() - started
                log.write(f"--- turn {turn} rc={rc}\n{stdout}\n[stderr]\n{stderr}\n")
                log.flush()
                events = []
                for line in stdout.splitlines():
                    if line.startswith("{"):
                        with contextlib.suppress(ValueError):
                            events.append(json.loads(line))
                records = proxy.recorder.since(start_index)
                completions = [r for r in records if str(r.get("path", "")).startswith("/completion")]
                row = {
                    "turn": turn,
                    "rc": rc,
                    "seconds": round(seconds, 2),
                    "replies": sum(1 for e in events if e.get("type") == "assistant_message"),
                    "errors": [e.get("text") for e in events if e.get("type") == "error"],
                    "summaries": sum(
                        1 for e in events if e.get("type") == "status" and "summar" in str(e.get("text", "")).lower()
                    ),
                    "completions": len(completions),
                    "max_prompt_tokens": max((int(r.get("tokens_evaluated") or 0) for r in completions), default=0),
                    "max_total_tokens": max(
                        (int(r.get("tokens_evaluated") or 0) + int(r.get("predicted_n") or 0) for r in completions),
                        default=0,
                    ),
                    "prompt_n": sum(int(r.get("prompt_n") or 0) for r in completions),
                    "server_refusals": sum(1 for r in records if int(r.get("status") or 0) == 400),
                    "truncated": sum(1 for r in completions if r.get("truncated")),
                }
                with open(out, "a") as sink:
                    sink.write(json.dumps(row) + "\n")
                print(json.dumps(row), file=sys.stderr, flush=True)
        finally:
            log.close()
            proxy.stop()
            if server is not None:
                server.stop()
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    failed = [r for r in rows if r["rc"] != 0 or r["errors"] or not r["replies"]]
    print(f"turns: {len(rows)}, failed: {len(failed)}, summaries: {sum(r['summaries'] for r in rows)}")
    print(
        f"max prompt tokens: {max(r['max_prompt_tokens'] for r in rows)} / window {args.ctx}; "
        f"max prompt+generated: {max(r['max_total_tokens'] for r in rows)}"
    )
    print(
        f"server refusals (400): {sum(r['server_refusals'] for r in rows)}; "
        f"median s per turn: {statistics.median(r['seconds'] for r in rows):.1f}; "
        f"median prompt tokens evaluated per turn: {statistics.median(r['prompt_n'] for r in rows):.0f}"
    )
    print("per turn (turn: largest prompt, summaries):")
    print(" ".join(f"{r['turn']}:{r['max_prompt_tokens']}{'S' * r['summaries']}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
