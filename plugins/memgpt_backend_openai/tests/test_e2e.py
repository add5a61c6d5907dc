"""End to end through the real CLI: `memgpt send`, two turns, the openai backend on the real llama-server's /v1,
with the grammar the agent negotiates there (the server is recognised as llama.cpp, which takes GBNF and JSON
schemas)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from memgpt_backend_openai import OpenAIBackend

from memgpt_core import plugins
from memgpt_core.selection import negotiate_grammar
from memgpt_core.storage import Store
from memgpt_core.testing import SAMPLE_FUNCTIONS

TURNS = ["Hi! My name is Priya and I live in Lisbon.", "What is my name?"]


def send(home: Path, url: str, message: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE", "MEMGPT_MODEL_NAME")}
    env["MEMGPT_HOME"] = str(home)
    args = [sys.executable, "-m", "memgpt_core", "send", "--agent", "e2e", "--json", "--backend", "openai"]
    args += ["--endpoint", url + "/v1", "--model", "chatml-grammar", "--max-tokens", "96", message]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert "Traceback" not in done.stderr, done.stderr
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_two_turns_through_memgpt_send(tmp_path: Path, llama_server: Any) -> None:
    # What the agent will negotiate once `send` has checked the server: a grammar, not "grammar sampling is off".
    backend = OpenAIBackend(llama_server.url + "/v1")
    backend.wait_until_ready(timeout=60)
    grammar, note = negotiate_grammar(plugins.get_wrapper("chatml-grammar"), backend, SAMPLE_FUNCTIONS, max_tokens=96)
    assert grammar is not None and grammar.format == "gbnf" and note is None

    home = tmp_path / "home"
    replies = []
    for message in TURNS:
        done, events = send(home, llama_server.url, message)
        errors = [e for e in events if e["type"] == "error"]
        assert done.returncode == 0 and not errors, (errors, done.stderr)
        calls = [e for e in events if e["type"] == "function_call"]
        assert calls, f"no function call was read from the model's answer: {events}"
        replies += [e["text"] for e in events if e["type"] == "assistant_message"]
    assert replies, "the agent never answered"
    with Store(home / "memgpt.db") as store:
        agent = store.get_agent("e2e")
        assert agent is not None and agent.config["backend"] == "openai"
        for said in TURNS:  # every user message is in recall memory, summarised out of the context or not
            assert store.search_messages(agent.id, said).total >= 1, said


def test_the_default_wrapper_follows_what_the_server_takes(
    tmp_path: Path, llama_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The class declares no grammar (a server of unknown kind takes none), but llama-server does: with no --model the
    # agent gets the -grammar default and a grammar, as it would with the llamacpp backend.
    from memgpt_core.agent.session import SessionOptions, open_session

    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "home"))
    options = SessionOptions(agent="defaults", backend="openai", endpoint=llama_server.url)
    with open_session(options) as session:
        assert session.agent.wrapper_name == "airoboros-l2-70b-2.1-grammar"
        assert session.agent.grammar is not None and session.agent.grammar_note is None
