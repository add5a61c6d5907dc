"""Fixtures for the Ollama backend's tests: a fake Ollama (see fake_ollama.py) with two pulled models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

# fake_ollama.py sits beside this file; the test modules import it by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_ollama import CALL, CHATML_JINJA, PROBE, STORY, YES, FakeModel, FakeOllama


@pytest.fixture(autouse=True)
def no_model_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own MEMGPT_MODEL_NAME must not reach the tests."""
    monkeypatch.delenv("MEMGPT_MODEL_NAME", raising=False)


@pytest.fixture
def ollama(httpserver: HTTPServer) -> FakeOllama:
    """An Ollama 0.30 with llama3.2 (a library model: Go template, trained for 131072 tokens, no num_ctx) and
    smollm2:135m (run on its GGUF's Jinja template, trained for 8192, PARAMETER num_ctx 2048), nothing loaded yet,
    started with OLLAMA_CONTEXT_LENGTH=8192."""
    fake = FakeOllama(httpserver, answers=[STORY, CALL, YES, PROBE], default_context=8192)
    fake.add(FakeModel("llama3.2:latest"))
    fake.add(
        FakeModel(
            "smollm2:135m",
            trained_context=8192,
            parameters='num_ctx                        2048\nstop                           "<|im_end|>"',
            template=CHATML_JINJA,
            vocabulary=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "Hello", "world", "!"),
            bos_id=1,
            eos_id=2,
        )
    )
    return fake.start()
