"""Per-request overhead of the openai backend against the llamacpp backend, on the same llama-server.

    .venv/bin/python benchmarks/bench_openai_overhead.py                       # starts its own llama-server
    .venv/bin/python benchmarks/bench_openai_overhead.py --url URL --n 40      # a running llama-server

Both backends send the same prompt with the same ``max_tokens`` (end-of-text banned, so every answer is exactly that
many tokens), alternating request by request so that load from other processes hits both alike. For each request
the wall time is measured around ``complete()`` and the server's own ``prompt_ms + predicted_ms`` is read from its
``timings``; the overhead is the difference: HTTP, JSON, the route's own work outside the timed part, and the
backend's Python. A third column sends the openai backend's body with plain ``requests`` (the floor of that route).

Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from memgpt_backend_llamacpp import LlamaCppBackend
from memgpt_backend_llamacpp.server import LlamaServer
from memgpt_backend_openai import OpenAIBackend

from memgpt_core.models import Completion, CompletionRequest

PROMPT = "<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n"


def timed(call: Any) -> tuple[float, float]:
    """(wall ms, server ms) of one request; ``call`` returns a Completion or the raw answer's timings dict."""
    began = time.perf_counter()
    result = call()
    wall = (time.perf_counter() - began) * 1000
    timings = result.timings.model_dump() if isinstance(result, Completion) else result
    return wall, (timings.get("prompt_ms") or 0.0) + (timings.get("predicted_ms") or 0.0)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running llama-server (else one is started with SmolLM2)")
    parser.add_argument("--n", type=int, default=40, help="requests per backend (default 40)")
    parser.add_argument("--max-tokens", type=int, default=8, help="tokens generated per request (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="llama-server --threads for the server it starts")
    args = parser.parse_args()

    import requests

    own = None
    url = args.url
    if not url:
        own = LlamaServer(ctx_size=2 * 4096, parallel=2, threads=args.threads).start()
        url = own.url
    try:
        native = LlamaCppBackend(url, timeout=600)
        openai = OpenAIBackend(url, timeout=600)
        native.wait_until_ready()
        openai.wait_until_ready()
        request = CompletionRequest(prompt=PROMPT, max_tokens=args.max_tokens, ban_eos=True, sampling={"seed": 1})
        session = requests.Session()
        session.trust_env = False
        body = {"prompt": PROMPT, "max_tokens": args.max_tokens, "stream": False, "ignore_eos": True, "seed": 1}
        body["model"] = openai.served_model()

        def plain() -> dict[str, Any]:
            return dict(session.post(url + "/v1/completions", json=body, timeout=600).json()["timings"])

        runs: dict[str, list[tuple[float, float]]] = {"llamacpp": [], "openai": [], "plain": []}
        calls = {
            "llamacpp": lambda: native.complete(request),
            "openai": lambda: openai.complete(request),
            "plain": plain,
        }
        for call in calls.values():  # warm the connections and the prompt cache
            call()
        for i in range(args.n):
            order = list(calls) if i % 2 == 0 else list(reversed(calls))
            for name in order:
                runs[name].append(timed(calls[name]))
            print(f"round {i + 1}/{args.n}", file=sys.stderr, flush=True)

        print(
            f"### openai vs llamacpp backend, same llama-server ({openai.dialect()} dialect, {openai.model_name()})\n"
        )
        print(
            f"{args.n} requests each, interleaved; prompt {len(PROMPT)} characters (cached after the first), "
            f"{args.max_tokens} tokens generated per request (ignore_eos).\n"
        )
        print("| route | median wall ms | median server ms | median overhead ms | p90 overhead ms | min overhead ms |")
        print("|---|---:|---:|---:|---:|---:|")
        labels = {
            "llamacpp": "`llamacpp` backend, `POST /completion`",
            "openai": "`openai` backend, `POST /v1/completions`",
            "plain": "plain `requests.post` to `/v1/completions`, same body as `openai`",
        }
        for name, rows in runs.items():
            walls = [wall for wall, _ in rows]
            servers = [server for _, server in rows]
            gaps = [wall - server for wall, server in rows]
            print(
                f"| {labels[name]} | {statistics.median(walls):.2f} | {statistics.median(servers):.2f} | "
                f"{statistics.median(gaps):.2f} | {percentile(gaps, 0.9):.2f} | {min(gaps):.2f} |"
            )
        medians = {name: statistics.median(wall - server for wall, server in rows) for name, rows in runs.items()}
        extra = medians["openai"] - medians["llamacpp"]
        print(f"\nopenai minus llamacpp, median overhead: {extra:+.2f} ms per request.")
    finally:
        if own is not None:
            own.stop()


if __name__ == "__main__":
    main()
