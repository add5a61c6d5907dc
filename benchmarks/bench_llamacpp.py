"""Benchmark of the llama.cpp backend against a real llama-server: prompt caching, start-up time, per-request overhead.

    .venv/bin/python benchmarks/bench_llamacpp.py                 # starts its own llama-server (SmolLM2)
    .venv/bin/python benchmarks/bench_llamacpp.py --url URL       # caching and overhead on a running server

Prints a Markdown report (the figures in docs/benchmarks.md come from it).
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from memgpt_backend_llamacpp import LlamaCppBackend
from memgpt_backend_llamacpp.server import LlamaServer

from memgpt_core.models import CompletionRequest

ROOT = Path(__file__).resolve().parent.parent
TURNS = 20

# A system prompt with memory blocks (about 500 tokens; MemGPT's real one is larger, which only widens the gap).
SYSTEM = (
    "You are a MemGPT agent. You keep a core memory with a persona block and a human block, an archival memory you "
    "search with archival_memory_search, and a recall memory of past messages. Every answer is one function call. "
) + " ".join(
    f"Persona note {i}: the agent likes topic number {i} and remembers what the user said about it." for i in range(20)
)


def chatml(system: str, turns: list[tuple[str, str]], user: str) -> str:
    parts = [f"<|im_start|>system\n{system}<|im_end|>\n"]
    for said, answered in turns:
        parts.append(f"<|im_start|>user\n{said}<|im_end|>\n<|im_start|>assistant\n{answered}<|im_end|>\n")
    parts.append(f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
    return "".join(parts)


def conversation(backend: LlamaCppBackend, *, cache: bool, key: str) -> list[dict[str, Any]]:
    """20 turns of a growing conversation; per turn the prompt size and what the server actually evaluated."""
    rows = []
    history: list[tuple[str, str]] = []
    for turn in range(TURNS):
        user = f"Turn {turn}: tell me one thing about topic {turn}."
        prompt = chatml(SYSTEM, history, user)
        if cache:
            result = backend.complete(CompletionRequest(prompt=prompt, max_tokens=4, cache_key=key))
            timings = result.timings
            row = {"prompt": result.prompt_tokens, "evaluated": timings.prompt_n, "ms": timings.prompt_ms}
        else:
            # The backend always asks for the cache, so the comparison run sends the request itself.
            data = backend._request(
                "POST", "/completion", {"prompt": prompt, "n_predict": 4, "cache_prompt": False, "id_slot": 1}
            )
            row = {
                "prompt": data["tokens_evaluated"],
                "evaluated": data["timings"]["prompt_n"],
                "ms": data["timings"]["prompt_ms"],
            }
        rows.append(row)
        print(f"turn {turn + 1} cache={'on' if cache else 'off'}: {row}", file=sys.stderr, flush=True)
        # A fixed reply, the same in both runs, so the two conversations are identical token for token.
        history.append((user, f"Topic {turn} is one of my favourites; I saved a note about it."))
    return rows


def overhead(backend: LlamaCppBackend, n: int = 30) -> list[float]:
    """Wall time of complete() minus the server's own prompt_ms + predicted_ms, in ms, for tiny requests."""
    prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    out = []
    backend.complete(CompletionRequest(prompt=prompt, max_tokens=1, cache_key="overhead"))  # warm the connection
    for _ in range(n):
        began = time.perf_counter()
        result = backend.complete(CompletionRequest(prompt=prompt, max_tokens=1, cache_key="overhead"))
        wall = (time.perf_counter() - began) * 1000
        out.append(wall - (result.timings.prompt_ms or 0) - (result.timings.predicted_ms or 0))
    return out


def time_start_embedded(runs: int = 3) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        embedded = LlamaCppBackend.start_embedded()
        times.append(time.perf_counter() - began)
        embedded.stop()
    return times


def time_warm_ready(url: str, runs: int = 10) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        LlamaCppBackend(url).wait_until_ready()
        times.append(time.perf_counter() - began)
    return times


def time_memgpt_run(env_extra: dict[str, str], runs: int = 3) -> list[float] | None:
    """Seconds from launching `memgpt run` until it shows its first `you:` prompt (then /exit)."""
    memgpt = ROOT / ".venv" / "bin" / "memgpt"
    if not memgpt.exists():
        return None
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "MEMGPT_HOME": home, **env_extra}
            for name in ("BACKEND_TYPE", "OPENAI_API_BASE"):
                if name not in env_extra:
                    env.pop(name, None)
            began = time.perf_counter()
            proc = subprocess.Popen(
                [str(memgpt), "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
            )
            seen = b""
            while b"you: " not in seen and time.perf_counter() - began < 300:
                ready, _, _ = select.select([proc.stdout], [], [], 1.0)
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    seen += chunk
            elapsed = time.perf_counter() - began
            proc.communicate(b"/exit\n", timeout=60)
            if b"you: " not in seen:
                print(f"memgpt run never showed its prompt: {seen[-500:]!r}", file=sys.stderr)
                return None
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="use this running llama-server for caching and overhead (needs >= 2 slots)")
    parser.add_argument("--skip-startup", action="store_true", help="do not measure start-up times")
    parser.add_argument("--threads", type=int, default=1, help="llama-server --threads for the server it starts")
    args = parser.parse_args()

    own = None
    url = args.url
    if not url:
        # One thread: llama.cpp's threads spin-wait on each other when other servers share the 2 cores.
        own = LlamaServer(ctx_size=2 * 8192, parallel=2, threads=args.threads).start()
        url = own.url
    try:
        backend = LlamaCppBackend(url, timeout=600)
        backend.wait_until_ready()
        print(f"## llama.cpp backend: {backend.model_name()}, {backend.context_window()} tokens per slot, at {url}\n")

        cached = conversation(backend, cache=True, key="bench-cached-agent")
        plain = conversation(backend, cache=False, key="")
        print("### Prompt tokens evaluated per turn, 20-turn conversation (max 4 new tokens per turn)\n")
        print("| turn | prompt tokens | evaluated, cache_prompt on | evaluated, cache_prompt off | ms on | ms off |")
        print("|---:|---:|---:|---:|---:|---:|")
        for i, (c, p) in enumerate(zip(cached, plain, strict=True)):
            print(f"| {i + 1} | {c['prompt']} | {c['evaluated']} | {p['evaluated']} | {c['ms']:.0f} | {p['ms']:.0f} |")
        total_c = sum(r["evaluated"] for r in cached)
        total_p = sum(r["evaluated"] for r in plain)
        later = [r["evaluated"] for r in cached[1:]]
        print(
            f"\nTotal evaluated: {total_c} with the cache, {total_p} without ({total_p / max(total_c, 1):.1f}x). "
            f"Turns 2-{TURNS} with the cache: median {statistics.median(later):.0f} tokens "
            f"(max {max(later)}), i.e. the previous reply plus the new user message.\n"
        )

        gaps = overhead(backend)
        print("### Backend overhead per request (wall time minus server-reported prompt_ms + predicted_ms)\n")
        print(
            f"30 requests of 1 token: median {statistics.median(gaps):.2f} ms, "
            f"p90 {sorted(gaps)[int(len(gaps) * 0.9) - 1]:.2f} ms, min {min(gaps):.2f} ms, max {max(gaps):.2f} ms.\n"
        )

        if not args.skip_startup:
            print("### Start-up\n")
            cold = time_start_embedded()
            warm = time_warm_ready(url)
            print(
                f"- start_embedded() until healthy (cold start of llama-server + SmolLM2): median "
                f"{statistics.median(cold):.2f} s over {len(cold)} runs ({', '.join(f'{t:.2f}' for t in cold)})"
            )
            print(
                f"- warm (server already running, only the GET /health check): median "
                f"{statistics.median(warm) * 1000:.1f} ms over {len(warm)} runs"
            )
            run_cold = time_memgpt_run({})
            run_warm = time_memgpt_run({"BACKEND_TYPE": "llamacpp", "OPENAI_API_BASE": url})
            if run_cold and run_warm:
                print(
                    f"- `memgpt run` to its first `you:` prompt, embedded server (cold): median "
                    f"{statistics.median(run_cold):.2f} s ({', '.join(f'{t:.2f}' for t in run_cold)})"
                )
                print(
                    f"- `memgpt run` to its first `you:` prompt, warm server (BACKEND_TYPE=llamacpp, "
                    f"OPENAI_API_BASE): median {statistics.median(run_warm):.2f} s "
                    f"({', '.join(f'{t:.2f}' for t in run_warm)})"
                )
            else:
                print("- `memgpt run` could not be measured (see stderr)")
    finally:
        if own is not None:
            own.stop()


if __name__ == "__main__":
    main()
