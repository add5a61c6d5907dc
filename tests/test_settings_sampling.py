"""Sampling settings: the canonical model, the one table of server names, and the real servers reading them.

The names each server reads are cited in ``memgpt_core.sampling``'s docstring. Here llama-server proves them by
echoing what it used (``generation_settings``), and the real KoboldCpp by behaving differently when they are set.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memgpt_core import plugins, sampling
from memgpt_core.errors import ConfigError
from memgpt_core.models import CompletionRequest
from memgpt_core.storage import Store

sys.path.insert(0, str(Path(__file__).parent))
from llama_answers import record_completions  # tests/llama_answers.py

EVERYTHING = {
    "temperature": 0.3,
    "top_p": 0.9,
    "top_k": 7,
    "min_p": 0.07,
    "repeat_penalty": 1.15,
    "repeat_last_n": 32,
    "seed": 5,
    "dry_multiplier": 0.8,
    "dry_base": 1.75,
    "dry_allowed_length": 3,
    "dry_penalty_last_n": 64,
}


# -- the table ---------------------------------------------------------------------------------------------------


def test_each_dialect_gets_its_own_names():
    assert sampling.to_server(EVERYTHING, "llama.cpp") == EVERYTHING
    kobold = sampling.to_server(EVERYTHING, "koboldcpp")
    assert {k: kobold[k] for k in ("rep_pen", "rep_pen_range", "sampler_seed", "dry_penalty_last_n")} == {
        "rep_pen": 1.15,
        "rep_pen_range": 32,
        "sampler_seed": 5,
        "dry_penalty_last_n": 64,
    }
    assert not {"repeat_penalty", "repeat_last_n", "seed"} & set(kobold)
    webui = sampling.to_server(EVERYTHING, "webui")
    assert webui["repetition_penalty"] == 1.15 and webui["repetition_penalty_range"] == 32 and webui["seed"] == 5
    assert "dry_penalty_last_n" not in webui and webui["dry_allowed_length"] == 3
    assert sampling.to_server(EVERYTHING, "ollama") == {k: v for k, v in EVERYTHING.items() if not k.startswith("dry_")}
    assert sampling.to_server(EVERYTHING, "lmstudio") == {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 7,
        "repeat_penalty": 1.15,
        "seed": 5,
    }
    assert sampling.to_server(EVERYTHING, "vllm") == {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 7,
        "min_p": 0.07,
        "repetition_penalty": 1.15,
        "seed": 5,
    }
    assert sampling.to_server(EVERYTHING, "openai") == {"temperature": 0.3, "top_p": 0.9, "seed": 5}


def test_other_servers_names_are_read_and_unknown_fields_pass_through():
    assert sampling.to_server({"repetition_penalty": 1.2, "sampler_seed": 4}, "koboldcpp") == {
        "rep_pen": 1.2,
        "sampler_seed": 4,
    }
    assert sampling.to_server({"rep_pen": 1.2, "typical": 0.9}, "ollama") == {"repeat_penalty": 1.2, "typical_p": 0.9}
    assert sampling.to_server({"mirostat": 2}, "llama.cpp") == {"mirostat": 2}
    with pytest.raises(ValueError, match="unknown sampling dialect"):
        sampling.to_server({}, "nosuch")


def test_what_a_server_lacks_is_named():
    assert sampling.unsupported(EVERYTHING, "ollama") == [
        "dry_multiplier",
        "dry_base",
        "dry_allowed_length",
        "dry_penalty_last_n",
    ]
    assert sampling.unsupported({"top_k": 4, "temperature": 1}, "openai") == ["top_k"]
    assert sampling.unsupported(EVERYTHING, "llama.cpp") == []


def test_every_shipped_backend_has_a_dialect_or_finds_its_own():
    for name in plugins.get_backends():
        assert name in sampling.BACKEND_DIALECTS or name == "openai", name
    assert set(sampling.BACKEND_DIALECTS.values()) <= set(sampling.DIALECTS)


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"temperature": "warm"}, "temperature = 'warm' is not a number"),
        ({"top_k": 2.5}, "top_k = 2.5 is not a whole number"),
        ({"top_p": -0.1}, "top_p = -0.1 is out of range"),
        ({"repeat_last_n": -1}, "repeat_last_n = -1 is out of range"),
        ({"temperature": float("nan")}, "temperature = nan is out of range"),
        ({"temprature": 1}, "'temprature' is not a sampling setting"),
    ],
)
def test_bad_values_are_refused_with_the_range(values, said):
    with pytest.raises(ConfigError) as caught:
        sampling.check(values, where="here")
    assert said in caught.value.message and caught.value.fix


def test_check_reads_text_and_other_names():
    assert sampling.check({"rep_pen": "1.1", "seed": "-1", "top_k": "40"}, where="x") == {
        "repeat_penalty": 1.1,
        "seed": -1,
        "top_k": 40,
    }


# -- llama.cpp: the server says what it used ---------------------------------------------------------------------


@pytest.fixture
def recording_proxy(httpserver, llama_server):
    """A pass-through in front of the real llama-server that keeps each /completion body and answer."""
    return record_completions(httpserver, llama_server.url)


def test_the_llamacpp_backend_sends_every_setting_and_llama_server_uses_it(recording_proxy):
    url, seen = recording_proxy
    backend = plugins.get_backend("llamacpp")(url)
    backend.complete(CompletionRequest(prompt="Hello", max_tokens=2, sampling=dict(EVERYTHING)))
    body, answer = seen[-1]
    used = answer["generation_settings"]
    for name, value in EVERYTHING.items():
        assert body[name] == value
        assert used[name] == pytest.approx(value, rel=1e-6), name


# -- KoboldCpp: the real server behaves differently when the settings reach it ------------------------------------


def _kobold_fixtures() -> Any:
    """The KoboldCpp plugin's own launcher and fixtures (its tests' conftest), loaded by path, not copied."""
    path = Path(__file__).resolve().parents[1] / "plugins/memgpt_backend_koboldcpp/tests/conftest.py"
    spec = importlib.util.spec_from_file_location("memgpt_koboldcpp_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_kobold = _kobold_fixtures()
koboldcpp_build = _kobold.koboldcpp_build
koboldcpp_process = _kobold.koboldcpp_process


@pytest.mark.server
def test_koboldcpp_reads_the_seed_the_penalty_and_dry_under_its_names(koboldcpp_process):
    """Each setting changes what the real KoboldCpp writes, and each window setting undoes that when made tiny:
    proof that the names in core's table are the ones it reads (a wrong name would change nothing)."""
    backend = plugins.get_backend("koboldcpp")(koboldcpp_process.url)

    def complete(prompt: str, **settings: Any) -> str:
        return backend.complete(CompletionRequest(prompt=prompt, max_tokens=12, sampling=settings)).text

    wild = {"temperature": 2.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    story = "Once upon a time, in a small village,"
    complete(story, seed=11, **wild)  # KoboldCpp's first pass over a new prompt samples from other logits
    same = [complete(story, seed=11, **wild) for _ in range(2)]
    assert same[0] == same[1], "the same sampler_seed gives the same text"
    assert complete(story, seed=12, **wild) != same[0], "another seed, another text"

    counting = "1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3,"
    greedy = {"temperature": 0.0, "top_k": 1}
    plain = complete(counting, **greedy)
    assert plain.startswith(" 1, 2, 3"), plain
    assert complete(counting, repeat_penalty=3.0, repeat_last_n=64, **greedy) != plain, "rep_pen"
    assert complete(counting, repeat_penalty=3.0, repeat_last_n=1, **greedy) == plain, "rep_pen_range"
    dry = {"dry_multiplier": 5.0, "dry_allowed_length": 1}
    assert complete(counting, **dry, **greedy) != plain, "dry_multiplier, dry_allowed_length"
    assert complete(counting, **dry, dry_penalty_last_n=2, **greedy) == plain, "dry_penalty_last_n"
    received = koboldcpp_process.received()[-1]
    assert received["dry_penalty_last_n"] == 2 and not {"repeat_last_n", "seed"} & set(received)


# -- the whole way: flags, the agent's stored settings and the config file reach the server ------------------------


def memgpt(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKEND_TYPE", "OPENAI_API_BASE", "MEMGPT_"))}
    return subprocess.run(
        [sys.executable, "-m", "memgpt_core", *args],
        capture_output=True,
        text=True,
        env={**clean, "MEMGPT_HOME": str(home)},
        timeout=300,
    )


def test_flags_the_agent_and_the_config_file_all_reach_the_server(tmp_path, recording_proxy):
    url, seen = recording_proxy
    home = tmp_path / "home"
    home.mkdir()
    (home / "config").write_text("[sampling]\nmin_p = 0.05\ntop_k = 50\n", encoding="utf-8")
    base = ["send", "--agent", "ann", "--backend", "llamacpp", "--endpoint", url, "--model", "chatml-grammar"]
    first = memgpt(
        home, *base, "--max-tokens", "48", "--temperature", "0.2", "--top-k", "5", "--dry-multiplier", "0.5", "Hi"
    )
    assert first.returncode == 0, first.stderr
    body, answer = seen[-1]
    assert (body["temperature"], body["top_k"], body["dry_multiplier"], body["min_p"]) == (0.2, 5, 0.5, 0.05)
    assert answer["generation_settings"]["top_k"] == 5
    with Store(home / "memgpt.db") as store:
        ann = store.get_agent("ann")
        assert ann is not None and ann.config["sampling"] == {"temperature": 0.2, "top_k": 5, "dry_multiplier": 0.5}

    seen.clear()
    again = memgpt(home, *base, "--seed", "4", "Hi again")  # the agent keeps its own; the file fills the rest
    assert again.returncode == 0, again.stderr
    body, _ = seen[-1]
    assert (body["temperature"], body["top_k"], body["dry_multiplier"], body["min_p"], body["seed"]) == (
        0.2,
        5,
        0.5,
        0.05,
        4,
    )
