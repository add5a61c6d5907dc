"""The context budget: summaries on overflow (ours or the server's), the memory-pressure alert, the cannot-fit case.

The model's answers are scripted (ScriptedBackend), including the summary it writes; the wrapper, parser and store
are real. Token counts use the documented estimate (the scripted backend has no tokenizer).
"""

from __future__ import annotations

import contextlib
import json
import re

import pytest

from memgpt_core.agent import ContextTooSmallError
from memgpt_core.agent.budget import estimate_tokens
from memgpt_core.agent.testing import ScriptedBackend, call_text, make_agent

REPLY = call_text("send_message", "reply", message="noted")
SUMMARY = call_text("save_summary", "sum", summary="The user told me about their garden and their dog Toast.")
LONG = "I want to tell you about my garden, where tomatoes, beans and basil grow in long rows. " * 6


def answer(request):
    """The scripted model: a summary when asked for one, a reply otherwise."""
    return SUMMARY if "save_summary" in request.prompt and "Summarise" in request.prompt else REPLY


def small_agent(store, wrapper, room, **settings):
    backend = ScriptedBackend(default=answer)
    agent = make_agent(store, backend, wrapper, **settings)
    agent.window = agent.counter.count(agent.build_prompt([])) + room
    return agent, backend


def summaries(agent):
    return [m for m in agent.context if agent._is_summary(m)]


def test_overflow_is_summarised_keeping_the_last_messages_and_recall(store, wrapper):
    agent, backend = small_agent(store, wrapper, room=1200, keep_last=4)
    for i in range(8):
        agent.user_message(f"turn {i}: {LONG}")
        prompt_tokens = agent.counter.count(backend.requests[-1].prompt)
        assert prompt_tokens + backend.requests[-1].max_tokens <= agent.window  # never past the window
    assert agent.record.state["summaries"] >= 2
    first = agent.context[0]
    assert agent._is_summary(first) and "dog Toast" in first.content
    assert "still in recall memory" in json.loads(first.content)["message"]
    # Every original message is still in recall, searchable.
    assert store.search_messages(agent.record.id, "turn 0 garden").total >= 1
    assert store.count_messages(agent.record.id) == 16
    # The summariser was asked with the older messages, in a prompt of its own.
    asks = [r for r in backend.requests if "save_summary" in r.prompt and "Summarise" in r.prompt]
    assert len(asks) == agent.record.state["summaries"]
    assert "user: turn 0" in asks[0].prompt


def test_a_summary_that_the_model_cannot_write_falls_back_and_still_frees_room(store, wrapper):
    backend = ScriptedBackend(default=lambda r: "gibberish" if "Summarise" in r.prompt else REPLY)
    agent = make_agent(store, backend, wrapper)
    agent.window = agent.counter.count(agent.build_prompt([])) + 1000
    for i in range(6):
        agent.user_message(f"turn {i}: {LONG}")
    assert agent.record.state["summaries"] >= 1
    assert "written without the model" in summaries(agent)[0].content


def test_the_memory_pressure_alert_comes_once_before_the_summary(store, wrapper):
    agent, backend = small_agent(store, wrapper, room=2500, keep_last=4)
    alerts = []
    for i in range(12):
        agent.user_message(f"turn {i}: {LONG}")
        alerts.append(backend.requests[-1].prompt.count("Memory pressure"))
        if agent.record.state.get("summaries"):
            break
    assert 1 in alerts
    first_alert = alerts.index(1)
    assert all(n == 1 for n in alerts[first_alert:-1])  # the same single alert stays in view, none added
    assert agent.record.state["summaries"] >= 1


def test_a_server_overflow_is_summarised_and_retried_once(store, wrapper):
    backend = ScriptedBackend(default=answer)
    agent = make_agent(store, backend, wrapper)
    for i in range(4):
        agent.user_message(f"turn {i}: {LONG}")
    # The server's context turns out smaller than we budgeted: it refuses the next prompt.
    backend.overflow_at = len(backend.requests[-1].prompt) + 100
    result = agent.user_message("and one more thing")
    assert result.replies == ["noted"]
    assert agent.record.state["summaries"] == 1
    assert agent.window < 8192


def test_a_context_too_small_for_the_system_prompt_says_which_setting_to_change(store, wrapper):
    backend = ScriptedBackend(default=answer)
    agent = make_agent(store, backend, wrapper)
    agent.window = agent.counter.count(agent.build_prompt([])) // 2
    with pytest.raises(ContextTooSmallError) as caught:
        agent.user_message("hi")
    message = str(caught.value)
    assert "system prompt and core memory take" in message and "--context-window" in message
    assert "llama-server -c" in message
    assert backend.requests == []  # no model call, no loop
    assert store.count_messages(agent.record.id) == 0


def test_a_message_too_long_for_the_context_is_named_as_the_cause(store, wrapper):
    backend = ScriptedBackend(default=answer)
    agent = make_agent(store, backend, wrapper)
    agent.window = agent.counter.count(agent.build_prompt([])) + 400
    huge = "word " * 3000
    with pytest.raises(ContextTooSmallError, match="the newest message alone takes"):
        agent.user_message(huge)
    assert estimate_tokens(huge) > 400


def test_summarising_never_loops(store, wrapper):
    # However small the room, each step asks for at most two summaries and then either answers or explains.
    agent, backend = small_agent(store, wrapper, room=700, keep_last=2)
    for i in range(5):
        before = len(backend.requests)
        with contextlib.suppress(ContextTooSmallError):
            agent.user_message(f"turn {i}: {LONG[:200]}")
        asks = sum(1 for r in backend.requests[before:] if "Summarise" in r.prompt)
        assert asks <= 2


def test_slash_summarize_summarises_on_demand(store, wrapper):
    backend = ScriptedBackend(default=answer)
    agent = make_agent(store, backend, wrapper, keep_last=2)
    assert agent.summarize() is False  # nothing old enough yet
    for i in range(3):
        agent.user_message(f"turn {i}")
    assert agent.summarize() is True
    assert len(agent.context) == 3 and agent._is_summary(agent.context[0])


def test_the_summary_grammar_is_built_for_the_summary_cap_so_it_closes_in_time(store):
    from memgpt_core import plugins
    from memgpt_core.agent.testing import GrammarScriptedBackend

    backend = GrammarScriptedBackend(default=answer)
    agent = make_agent(store, backend, plugins.get_wrapper("chatml-grammar"), summary_max_tokens=300)
    agent.user_message(LONG)
    agent.user_message("and more")
    assert agent.summarize()
    ask = next(r for r in backend.requests if "Summarise" in r.prompt)
    step = backend.requests[0]
    caps = {int(n) for n in re.findall(r"string-char\{0,(\d+)\}", ask.grammar.text)}
    step_caps = {int(n) for n in re.findall(r"string-char\{0,(\d+)\}", step.grammar.text)}
    # Its strings fit the summary's own cap (one token per character at worst), not the step's larger one.
    assert ask.max_tokens == 300 and caps and max(caps) * 2 < 300 < max(step_caps) * 2
