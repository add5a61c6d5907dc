"""Benchmark of the llama.cpp backend against a real llama-server: prompt caching, start-up time, per-request overhead.

    .venv/bin/python benchmarks/bench_llamacpp.py                 # starts its own llama-server (SmolLM2)
    .venv/bin/python benchmarks/bench_llamacpp.py --url URL       # caching and overhead on a running server

Prints a Markdown report (the figures in docs/benchmarks.md come from it).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
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
OVERHEAD_PROMPT = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"

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


def overheads(backend: LlamaCppBackend, url: str, n: int = 30) -> tuple[list[float], list[float]]:
    """Wall time minus the server's own prompt_ms + predicted_ms, in ms, for tiny requests: through the backend, and
    the same body sent with plain requests. The two alternate, so load from other processes hits both alike."""
    import requests

    session = requests.Session()
    session.trust_env = False
    request = CompletionRequest(prompt=OVERHEAD_PROMPT, max_tokens=1, cache_key="overhead")
    body = {"prompt": OVERHEAD_PROMPT, "n_predict": 1, "cache_prompt": True, "id_slot": backend.slot_for("overhead")}
    backend.complete(request)  # warm the connection and the slot's cache
    ours, plain = [], []
    for _ in range(n):
        began = time.perf_counter()
        result = backend.complete(request)
        wall = (time.perf_counter() - began) * 1000
        ours.append(wall - (result.timings.prompt_ms or 0) - (result.timings.predicted_ms or 0))
        began = time.perf_counter()
        data = session.post(url + "/completion", json=body, timeout=600).json()
        wall = (time.perf_counter() - began) * 1000
        plain.append(wall - data["timings"]["prompt_ms"] - data["timings"]["predicted_ms"])
    return ours, plain


def in_process_cost(backend: LlamaCppBackend, url: str, n: int = 2000) -> float:
    """Microseconds the backend's own Python spends per request: building the body and reading the answer."""
    import requests

    request = CompletionRequest(prompt=OVERHEAD_PROMPT, max_tokens=1, cache_key="overhead")
    answer = requests.post(url + "/completion", json={"prompt": OVERHEAD_PROMPT, "n_predict": 1}, timeout=600).json()
    began = time.perf_counter()
    for _ in range(n):
        body = {k: v for k, v in request.sampling.items()}
        body.update(prompt=request.prompt, n_predict=request.max_tokens, cache_prompt=True, stream=False)
        body["id_slot"] = backend.slot_for(request.cache_key)
        backend._completion(answer)
    return (time.perf_counter() - began) / n * 1e6


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
    """Seconds from launching `memgpt run` until it is ready to send the agent's first prompt to the model.

    That moment is its banner line ("type /help ..."), printed after the backend is connected and the agent loaded
    and just before the agent's first step; how long that step takes is the model's speed, measured elsewhere.
    """
    memgpt = ROOT / ".venv" / "bin" / "memgpt"
    if not memgpt.exists():
        return None
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "MEMGPT_HOME": home, "PYTHONUNBUFFERED": "1", **env_extra}
            for name in ("BACKEND_TYPE", "OPENAI_API_BASE"):
                if name not in env_extra:
                    env.pop(name, None)
            began = time.perf_counter()
            proc = subprocess.Popen(
                [str(memgpt), "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
            )
            seen = b""
            while b"type /help" not in seen and time.perf_counter() - began < 300:
                ready, _, _ = select.select([proc.stdout], [], [], 1.0)
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    seen += chunk
            elapsed = time.perf_counter() - began
            # Ctrl-C, as a user leaving during the first step would; memgpt stops its embedded server on it.
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            if b"type /help" not in seen:
                print(f"memgpt run never showed its banner: {seen[-500:]!r}", file=sys.stderr)
                return None
            times.append(elapsed)
    return times


def report_conversation(backend: LlamaCppBackend) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="use this running llama-server for caching and overhead (needs >= 2 slots)")
    parser.add_argument("--skip-startup", action="store_true", help="do not measure start-up times")
    parser.add_argument("--skip-conversation", action="store_true", help="do not run the 20-turn caching comparison")
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

        if not args.skip_conversation:
            report_conversation(backend)

        print("### Overhead per request (wall time minus the server's reported prompt_ms + predicted_ms)\n")
        print("| 30 requests of 1 token, alternating | median ms | p90 ms | min ms |")
        print("|---|---:|---:|---:|")
        ours, plain = overheads(backend, url)
        for label, gaps in (
            ("LlamaCppBackend.complete()", ours),
            ("plain requests.post, same body (HTTP + server work outside its timings)", plain),
        ):
            p90 = sorted(gaps)[int(len(gaps) * 0.9) - 1]
            print(f"| {label} | {statistics.median(gaps):.2f} | {p90:.2f} | {min(gaps):.2f} |")
        print(
            f"\nThe backend's own Python per request (build the body, pick the slot, read the answer into a "
            f"Completion), no network: {in_process_cost(backend, url):.0f} µs.\n"
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
                    f"- `memgpt run` until ready to send the first prompt, embedded server (cold): median "
                    f"{statistics.median(run_cold):.2f} s ({', '.join(f'{t:.2f}' for t in run_cold)})"
                )
                print(
                    f"- `memgpt run` until ready to send the first prompt, warm server (BACKEND_TYPE=llamacpp, "
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
