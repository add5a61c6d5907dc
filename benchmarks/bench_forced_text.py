"""Forced text, measured on the same prompts: tokens generated, requests and seconds per call, three ways.

For each of the 10 scripted messages (benchmarks/peer/messages.json) a fresh agent's first prompt is built exactly as
a step builds it (``Agent.first_request``, the ``chatml-grammar`` wrapper), and the call is generated three ways,
interleaved, on one llama-server (SmolLM2, one slot, one thread, the prompt cache on):

- ``plain``: the whole call sampled under the grammar, one request (as before forced text);
- ``opening``: the grammar's forced opening appended to the prompt, the rest sampled, one request (what a backend
  that does not stream gets);
- ``jumps``: the opening appended, and with the stream the rest of the function name and its params' opening once
  the model has picked a function (the agent's default on a backend that streams).

Sampling is greedy at a fixed seed, so the three differ only by how the forced text reaches the model; the free text
may still differ, because the model under a grammar writes JSON in other pieces than the prompt has. Each call is
done for both the full function set and the reply-only step; the mode that goes first on a new prompt (and so pays for
evaluating it) rotates. Reported per mode: median tokens generated, requests,
seconds per call, and how many calls read.

    .venv/bin/python benchmarks/bench_forced_text.py [--url URL] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MESSAGES = HERE / "peer" / "messages.json"
MODES = {"plain": (False, False), "opening": (True, False), "jumps": (True, True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running llama-server (default: start one, one slot, one thread)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the messages (default 3)")
    args = parser.parse_args()

    from memgpt_backend_llamacpp import LlamaCppBackend

    from memgpt_core import plugins
    from memgpt_core.agent.agent import Agent, AgentSettings
    from memgpt_core.agent.memory import load_block_text
    from memgpt_core.agent.streaming import generate
    from memgpt_core.errors import ParseError
    from memgpt_core.models import CompletionRequest
    from memgpt_core.storage import Store

    server = None
    url = args.url
    if not url:
        from memgpt_backend_llamacpp.server import LlamaServer

        server = LlamaServer(ctx_size=8192, parallel=1, threads=1).start()
        url = server.url
    messages = json.loads(MESSAGES.read_text())
    results: dict[tuple[str, str], list[tuple[int, int, float, bool]]] = {}
    try:

        class CountingBackend(LlamaCppBackend):
            """The llamacpp backend, counting the requests it sends (a jump is a second one)."""

            sent = 0

            def complete(self, request):  # type: ignore[no-untyped-def]
                self.sent += 1
                return super().complete(request)

            def stream(self, request):  # type: ignore[no-untyped-def]
                self.sent += 1
                return super().stream(request)

        backend = CountingBackend(url)
        with tempfile.TemporaryDirectory() as scratch, Store(f"{scratch}/agents.db") as store:
            record = store.create_agent(
                "bench", persona=load_block_text("persona", None), human=load_block_text("human", None)
            )
            wrapper = plugins.get_wrapper("chatml-grammar")
            agent = Agent(store, record, backend, wrapper, AgentSettings(context_window=8192))
            for _ in range(args.repeats):
                for index, message in enumerate(messages):
                    for step in ("every-function", "reply-only"):
                        prompt, grammar = agent.first_request(message)
                        if step == "reply-only":
                            grammar = agent._reply_grammar()
                        request = CompletionRequest(
                            prompt=prompt,
                            max_tokens=512,
                            stop=list(wrapper.stop_sequences),
                            grammar=grammar,
                            sampling={"temperature": 0, "seed": 1},
                            cache_key="bench",
                            context_window=8192,
                        )
                        # The first mode for a new prompt pays for evaluating it: each mode goes first in turn.
                        names = list(MODES)
                        for mode in names[index % 3 :] + names[: index % 3]:
                            forcing, stream = MODES[mode]
                            before = backend.sent
                            started = time.perf_counter()
                            done, _ = generate(backend, request, forcing=forcing, stream=stream)
                            seconds = time.perf_counter() - started
                            try:
                                wrapper.parse(done.text, agent.functions)
                                readable = True
                            except ParseError:
                                readable = False
                            tokens = int(done.completion_tokens or 0)
                            results.setdefault((step, mode), []).append(
                                (tokens, backend.sent - before, seconds, readable)
                            )
    finally:
        if server is not None:
            server.stop()
    print("| step | mode | calls | readable | median tokens generated | requests per call | median s per call |")
    print("|---|---|---|---|---|---|---|")
    for (step, mode), rows in results.items():
        print(
            f"| {step} | {mode} | {len(rows)} | {sum(r[3] for r in rows)} "
            f"| {statistics.median(r[0] for r in rows):.0f} | {statistics.mean(r[1] for r in rows):.2f} "
            f"| {statistics.median(r[2] for r in rows):.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
