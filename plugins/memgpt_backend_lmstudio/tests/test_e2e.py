"""End to end through the real CLI: `memgpt send`, two turns, the lmstudio and lmstudio-legacy backends on the real
llama-server's OpenAI-compatible API, with a JSON-schema grammar (the only format they declare; llama-server takes
it as ``response_format`` on /v1/chat/completions, where both backends send a request with a grammar)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memgpt_core import plugins
from memgpt_core.selection import negotiate_grammar
from memgpt_core.storage import Store
from memgpt_core.testing import SAMPLE_FUNCTIONS

TURNS = ["Hi! My name is Priya and I live in Lisbon.", "What is my name?"]


def send(
    home: Path, backend: str, url: str, window: int, message: str
) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    env = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE")}
    env["MEMGPT_HOME"] = str(home)
    args = [sys.executable, "-m", "memgpt_core", "send", "--agent", "e2e", "--json", "--backend", backend]
    # llama-server has no LM Studio /api/v1/models, so the context is given, as with an LM Studio before 0.4.
    args += ["--endpoint", url, "--model", "chatml-grammar", "--max-tokens", "96", "--context-window", str(window)]
    args.append(message)
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert "Traceback" not in done.stderr, done.stderr
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("backend", ["lmstudio", "lmstudio-legacy"])
def test_two_turns_through_memgpt_send(tmp_path: Path, llama_server: Any, backend: str) -> None:
    made = plugins.get_backend(backend)(llama_server.url)
    grammar, note = negotiate_grammar(plugins.get_wrapper("chatml-grammar"), made, SAMPLE_FUNCTIONS, max_tokens=96)
    assert grammar is not None and grammar.format == "json_schema" and note is None

    home = tmp_path / "home"
    replies = []
    for message in TURNS:
        done, events = send(home, backend, llama_server.url, llama_server.n_ctx, message)
        errors = [e for e in events if e["type"] == "error"]
        assert done.returncode == 0 and not errors, (errors, done.stderr)
        assert any(e["type"] == "function_call" for e in events), f"no function call was read: {events}"
        replies += [e["text"] for e in events if e["type"] == "assistant_message"]
    assert replies, "the agent never answered"
    with Store(home / "memgpt.db") as store:
        agent = store.get_agent("e2e")
        assert agent is not None and agent.config["backend"] == backend
        for said in TURNS:  # every user message is in recall memory, summarised out of the context or not
            assert store.search_messages(agent.id, said).total >= 1, said
