"""End to end on the real model: `memgpt send` against llama-server with SmolLM2 and the chatml-grammar wrapper.

Kept short on purpose (small output caps, few turns); the long runs and the timings live in benchmarks/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from memgpt_core.agent.summary import Summaries
from memgpt_core.storage import Store

SCRIPT = [
    "Hi! My name is Priya and I live in Lisbon.",
    "I work as a marine biologist.",
    "What is my name?",
    "My favourite food is grilled sardines.",
    "Do you remember where I live?",
    "I have a cat called Pixel.",
    "Can you search our conversation for 'sardines'?",
    "I am learning to play the cello.",
    "What do you know about me so far?",
    "Thanks, see you tomorrow!",
]


def all_message_ids(store, agent_id):
    """Every message the agent ever stored (its recall memory), oldest first."""
    rows = store.conn.execute("SELECT id FROM messages WHERE agent_id = ? ORDER BY id", (agent_id,)).fetchall()
    return [row[0] for row in rows]


def said(messages):
    """What the user said, in order, from the user_message events among ``messages``."""
    events = [json.loads(m.content) for m in messages if m.role == "user" and m.content]
    return [e["message"] for e in events if e.get("type") == "user_message"]


def send(home, url, message, *extra):
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    args = [sys.executable, "-m", "memgpt_core", "send", "--agent", "e2e", "--json", "--backend", "llamacpp"]
    args += ["--endpoint", url, "--model", "chatml-grammar", "--max-tokens", "96", *extra, message]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert "Traceback" not in done.stderr, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done, events


def test_a_ten_turn_conversation_through_memgpt_send(tmp_path, llama_server):
    home = tmp_path / "home"
    replies = []
    for message in SCRIPT:
        done, events = send(home, llama_server.url, message)
        errors = [e for e in events if e["type"] == "error"]
        assert done.returncode == 0 and not errors, (errors, done.stderr)
        assert all(
            e["type"] in ("inner_thoughts", "function_call", "function_return", "assistant_message", "status")
            for e in events
        )
        replies += [e["text"] for e in events if e["type"] == "assistant_message"]
    assert replies, "the agent never answered"
    with Store(home / "memgpt.db") as store:
        agent = store.get_agent("e2e")
        for reply in replies:  # every reply is in recall memory
            stored = store.conn.execute(
                "SELECT count(*) FROM messages WHERE agent_id = ? AND role = 'assistant' AND text = ?",
                (agent.id, reply),
            ).fetchone()[0]
            assert stored >= 1
        # Recall memory keeps every user message, once and in order, whatever left the context.
        assert said(store.get_messages(all_message_ids(store, agent.id))) == SCRIPT
        context = store.get_messages(agent.context)
        in_context = said(context)
        if agent.state.get("summaries", 0) == 0:
            assert in_context == SCRIPT
        else:
            # A legitimate summary: it opens the context in place of the oldest messages; the newest stay as they were.
            assert Summaries._is_summary(context[0]), context[0].content
            assert in_context and in_context == SCRIPT[len(SCRIPT) - len(in_context) :]


def test_a_small_context_overflows_into_summaries_never_into_errors(tmp_path, llama_server_factory):
    server = llama_server_factory(ctx_size=1536, parallel=1)
    home = tmp_path / "home"
    story = (
        "Let me tell you a long story about my week. On Monday I repaired the old fence behind the house, "
        "on Tuesday I baked bread with rosemary and olive oil, on Wednesday I walked along the river for hours. "
    ) * 3
    summaries = 0
    for turn in range(6):
        done, events = send(home, server.url, f"Day {turn}. {story}")
        errors = [e for e in events if e["type"] == "error"]
        assert done.returncode == 0 and not errors, (errors, done.stderr)
        with Store(home / "memgpt.db") as store:
            summaries = store.get_agent("e2e").state.get("summaries", 0)
        if summaries >= 2:
            break
    assert summaries >= 2
    with Store(home / "memgpt.db") as store:  # the summarised originals are still in recall memory
        agent = store.get_agent("e2e")
        assert store.search_messages(agent.id, "Day 0 fence").total >= 1
