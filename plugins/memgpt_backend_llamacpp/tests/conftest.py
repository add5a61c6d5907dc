"""Fixtures for the llamacpp backend's tests: a backend on the session's real llama-server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from memgpt_backend_llamacpp import LlamaCppBackend

# llamacpp_prompts.py sits beside this file; the test modules import it by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def backend(llama_server) -> LlamaCppBackend:
    return LlamaCppBackend(llama_server.url, timeout=120)
