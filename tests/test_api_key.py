"""Authenticated endpoints, against a real llama-server started with ``--api-key``: every backend that speaks an API
llama-server serves (llamacpp natively; webui and lmstudio through the OpenAI-compatible paths) sends the key as a
bearer token; without it the user gets a clear 401 message; and the key never appears in an error, a log record
or a ``memgpt doctor`` report."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from memgpt_core import plugins
from memgpt_core.cli import cli
from memgpt_core.errors import BackendError, BackendHTTPError, ContextOverflowError
from memgpt_core.models import CompletionRequest
from memgpt_core.testing import closed_port

pytestmark = pytest.mark.server  # every test here talks to a llama-server of its own

KEY = "sk-memgpt-test-7f3a9c2e51d4"
WRONG = "sk-wrong-key-0b8d44e1aa90"
BACKENDS = ("llamacpp", "webui", "lmstudio", "lmstudio-legacy", "openai")


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[Any]:
    """One llama-server with an API key for this module (small context: the tests send a few tokens)."""
    if os.environ.get("MEMGPT_SKIP_SERVER_TESTS", "").strip() not in ("", "0"):
        pytest.skip("MEMGPT_SKIP_SERVER_TESTS is set")
    from memgpt_backend_llamacpp.server import LlamaServer

    server = LlamaServer(ctx_size=512, parallel=1, api_key=KEY)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _texts(error: BaseException) -> str:
    """Everything an error could show or log: its sentence, fix, URL, body and attributes."""
    return " ".join(str(part) for part in (error, repr(error), vars(error)))


@pytest.mark.parametrize("name", BACKENDS)
def test_with_the_key_every_backend_completes(keyed_server: Any, name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backend = plugins.get_backend(name)(keyed_server.url, api_key=KEY, timeout=120)
    done = backend.complete(CompletionRequest(prompt="Hello, my name is", max_tokens=2, sampling={"temperature": 0}))
    assert done.text
    assert KEY not in caplog.text, "the key reached a log record"


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("key", [None, WRONG])
def test_without_the_right_key_a_clear_401(keyed_server: Any, name: str, key: str | None) -> None:
    backend = plugins.get_backend(name)(keyed_server.url, api_key=key, timeout=60)
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="Hello", max_tokens=2))
    error = caught.value
    assert error.status == 401
    assert "401" in str(error) and keyed_server.url in str(error)
    assert "MEMGPT_API_KEY" in str(error) and "--api-key" in str(error), "the fix names both ways to set the key"
    assert WRONG not in _texts(error) and KEY not in _texts(error)


def test_the_key_is_not_in_other_errors(keyed_server: Any) -> None:
    # A prompt longer than the 512-token context: the server's overflow answer must not carry the key.
    backend = plugins.get_backend("llamacpp")(keyed_server.url, api_key=KEY, timeout=120)
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete(CompletionRequest(prompt="word " * 900, max_tokens=4, context_window=512))
    assert KEY not in _texts(caught.value)
    # Nothing listening: the connection error must not carry it either.
    for name in BACKENDS:
        silent = plugins.get_backend(name)(f"http://127.0.0.1:{closed_port()}", api_key=KEY, timeout=5)
        with pytest.raises(BackendError) as caught_down:
            silent.complete(CompletionRequest(prompt="Hello", max_tokens=2))
        assert KEY not in _texts(caught_down.value)


def test_doctor_report_with_a_wrong_key_from_the_environment(keyed_server: Any) -> None:
    env = {"BACKEND_TYPE": "llamacpp", "OPENAI_API_BASE": keyed_server.url, "MEMGPT_API_KEY": WRONG}
    result = CliRunner().invoke(cli, ["doctor"], env=env, catch_exceptions=False)
    assert result.exit_code == 1
    assert "FAIL  reachable" in result.output and "401" in result.output
    assert "MEMGPT_API_KEY" in result.output
    assert WRONG not in result.output


def test_doctor_reaches_the_keyed_server_with_the_flag(keyed_server: Any) -> None:
    from memgpt_core.cli.doctor_cmd import OK, _check_reachable

    backend = plugins.get_backend("llamacpp")(keyed_server.url, api_key=KEY, timeout=120)
    check = _check_reachable(backend)
    assert check.status == OK, check
    assert KEY not in check.detail
