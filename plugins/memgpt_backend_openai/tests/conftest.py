"""Fixtures for the openai and vllm backends' tests: a fake vLLM (see fake_vllm.py), and no model name leaking in
from the developer's environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

# fake_vllm.py sits beside this file; the test modules import it by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_vllm import FakeVLLM


@pytest.fixture(autouse=True)
def no_model_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own MEMGPT_MODEL_NAME must not reach the tests."""
    monkeypatch.delenv("MEMGPT_MODEL_NAME", raising=False)


@pytest.fixture
def vllm(httpserver: HTTPServer) -> FakeVLLM:
    """vLLM 0.11.0 serving Qwen/Qwen2.5-7B-Instruct with max_model_len 4096."""
    return FakeVLLM(httpserver)
