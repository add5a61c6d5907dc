"""Fixtures shared by the agent tests: a fresh store under a temporary MEMGPT_HOME, and the chatml wrapper."""

from __future__ import annotations

import pytest

from memgpt_core import plugins
from memgpt_core.storage import Store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path))
    with Store() as s:
        yield s


@pytest.fixture
def wrapper():
    return plugins.get_wrapper("chatml")
