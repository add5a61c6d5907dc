"""The agent's measured sampling defaults: sent when the user set nothing, reaching the real llama-server, and always
giving way to the user's own setting.

llama-server answers every ``/completion`` with the settings it sampled with (``generation_settings``, see the
server's README, "POST /completion"), so a pass-through in front of the real server shows both what the agent sent
and what the server used. The retry and summary requests are read from a scripted model (ScriptedBackend answers in
the model's place; the agent code and the request it builds are real).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from memgpt_core import plugins
from memgpt_core.agent.completion import RETRY_TEMPERATURE
from memgpt_core.agent.defaults import DEFAULT_SAMPLING
from memgpt_core.agent.testing import ScriptedBackend, call_text, make_agent

sys.path.insert(0, str(Path(__file__).parent))
from llama_answers import record_completions  # tests/llama_answers.py

REPLY = call_text("send_message", "Say hi.", message="Hello!")


@pytest.fixture
def server_answers(httpserver, llama_server):
    """A pass-through in front of the real llama-server that keeps each /completion body and its answer."""
    return record_completions(httpserver, llama_server.url)


def real_agent(store, url: str, **settings: Any) -> Any:
    backend = plugins.get_backend("llamacpp")(url)
    return make_agent(store, backend, plugins.get_wrapper("auto-grammar"), max_tokens=64, **settings)


def test_with_nothing_set_the_defaults_reach_llama_server_and_it_samples_with_them(store, server_answers):
    url, seen = server_answers
    agent = real_agent(store, url)
    assert agent.settings.sampling == {}
    agent.user_message("Hi!")
    assert seen, "no completion reached the server"
    for body, answer in seen:
        used = answer["generation_settings"]
        for name, value in DEFAULT_SAMPLING.items():
            assert body[name] == value, name
            assert used[name] == pytest.approx(value), name


def test_the_users_own_settings_win_over_the_defaults_and_the_rest_still_apply(store, server_answers):
    url, seen = server_answers
    own = {"dry_multiplier": 0.0, "temperature": 0.3}
    agent = real_agent(store, url, sampling=dict(own))
    agent.user_message("Hi!")
    body, answer = seen[0]
    used = answer["generation_settings"]
    assert body["dry_multiplier"] == 0.0 and used["dry_multiplier"] == 0.0
    assert body["temperature"] == 0.3 and used["temperature"] == pytest.approx(0.3)
    for name in DEFAULT_SAMPLING.keys() - own.keys():
        assert used[name] == pytest.approx(DEFAULT_SAMPLING[name]), name
    assert agent.settings.sampling == own, "the agent's settings are not rewritten with the defaults"


def test_a_retry_keeps_the_defaults_samples_hotter_and_moves_a_fixed_seed_on(store, wrapper):
    backend = ScriptedBackend(["not a call at all", "still not one", REPLY])
    agent = make_agent(store, backend, wrapper, sampling={"seed": 7})
    assert agent.user_message("hi").replies == ["Hello!"]
    first, second, third = (request.sampling for request in backend.requests)
    base, step = RETRY_TEMPERATURE
    assert first == {**DEFAULT_SAMPLING, "seed": 7}
    assert second == {**DEFAULT_SAMPLING, "seed": 8, "temperature": base + step}
    assert third == {**DEFAULT_SAMPLING, "seed": 9, "temperature": base + 2 * step}


def test_a_retry_keeps_the_users_temperature_and_a_random_seed(store, wrapper):
    backend = ScriptedBackend(["not a call at all", REPLY])
    agent = make_agent(store, backend, wrapper, sampling={"seed": -1, "temperature": 0.1})
    agent.user_message("hi")
    assert backend.requests[1].sampling == {**DEFAULT_SAMPLING, "seed": -1, "temperature": 0.1}


def test_the_summary_request_samples_with_the_defaults_under_the_users_settings(store, wrapper):
    summary = call_text("save_summary", "sum", summary="The user talked about kites.")
    backend = ScriptedBackend(default=lambda r: summary if "Summarise" in r.prompt else REPLY)
    agent = make_agent(store, backend, wrapper, keep_last=2, sampling={"dry_base": 2.0})
    agent.window = agent.counter.count(agent.build_prompt([])) + 700
    for i in range(6):
        agent.user_message(f"message {i}: I fly kites on the beach every weekend, in every kind of wind. " * 3)
    asks = [r for r in backend.requests if "Summarise" in r.prompt]
    assert asks, "no summary was written"
    assert all(r.sampling == {**DEFAULT_SAMPLING, "dry_base": 2.0} for r in asks)
