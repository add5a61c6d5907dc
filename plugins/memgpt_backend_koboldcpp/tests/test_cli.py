"""End to end on the real KoboldCpp: ``memgpt send`` (configured as MemGPT's documentation says, so with the default
airoboros-l2-70b-2.1-grammar wrapper and a GBNF grammar) and ``memgpt doctor``, each run as the real CLI in a
subprocess with MEMGPT_HOME in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from memgpt_core.storage import Store

TURNS = (
    "Hi! My name is Priya and I live in Lisbon.",
    "I work as a marine biologist.",
    "What is my name?",
)
STEP_EVENTS = {"inner_thoughts", "function_call", "function_return", "assistant_message", "status"}


def memgpt(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE", "MEMGPT_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "memgpt_core", *args],
        capture_output=True,
        text=True,
        env={**clean, "MEMGPT_HOME": str(home), **env},
        timeout=600,
    )


def test_a_conversation_through_memgpt_send(tmp_path: Path, koboldcpp_process: Any) -> None:
    home = tmp_path / "home"
    before = len(koboldcpp_process.received())
    replies = []
    for message in TURNS:
        done = memgpt(
            home, "send", "--agent", "kobold", "--json", "--max-tokens", "128", message,
            BACKEND_TYPE="koboldcpp", OPENAI_API_BASE=koboldcpp_process.url,
        )  # fmt: skip
        assert "Traceback" not in done.stderr, done.stderr
        events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        errors = [event for event in events if event["type"] == "error"]
        assert done.returncode == 0 and not errors, (errors, done.stderr)
        assert {event["type"] for event in events} <= STEP_EVENTS
        replies += [event["text"] for event in events if event["type"] == "assistant_message"]
    assert len(replies) >= len(TURNS), "every message got an answer"

    generations = koboldcpp_process.received()[before:]
    assert generations, "the agent's steps went to KoboldCpp"
    for body in generations:  # the default wrapper for a backend with grammars: airoboros, constrained by GBNF
        assert "\nUSER: " in body["prompt"] and "\nASSISTANT:" in body["prompt"]
        assert "::=" in body["grammar"] and body["grammar_retain_state"] is False
        assert "\nUSER:" in body["stop_sequence"] and body["max_context_length"] == koboldcpp_process.context_size
    with Store(home / "memgpt.db") as store:
        agent = store.get_agent("kobold")
        users = [m for m in store.get_messages(agent.context) if '"type": "user_message"' in (m.content or "")]
        assert len(users) == len(TURNS)


def test_memgpt_doctor_on_koboldcpp(tmp_path: Path, koboldcpp_server: str) -> None:
    done = memgpt(
        tmp_path, "doctor", "--backend", "koboldcpp", "--endpoint", koboldcpp_server, "--samples", "2", "--json"
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    report = json.loads(done.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert report["ok"] is True and report["wrapper"] == "airoboros-l2-70b-2.1-grammar"
    assert {name: check["status"] for name, check in checks.items()} == {
        "reachable": "ok",
        "context": "ok",
        "grammar": "ok",
        "speed": "ok",
        "parse rate": "ok",
    }, checks
    assert checks["reachable"]["data"]["model"].startswith("koboldcpp/")
    # KoboldCpp reports no token counts: with end-of-text banned it generates exactly the cap, so that is the count.
    assert "generated up to the cap" in checks["speed"]["detail"]
    assert checks["parse rate"]["data"]["wrapper"]["grammar"] == "gbnf"
