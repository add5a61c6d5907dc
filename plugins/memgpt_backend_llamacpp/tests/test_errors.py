"""Every failure a user meets with a llama.cpp server, produced for real: each error names the URL and the fix."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from memgpt_backend_llamacpp import LlamaCppBackend
from memgpt_backend_llamacpp.server import LlamaServer, health_status

from memgpt_core.errors import (
    BackendHTTPError,
    BackendLoadingError,
    BackendResponseError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
    MemGPTError,
)
from memgpt_core.models import CompletionRequest, Grammar
from memgpt_core.testing import closed_port


def request(prompt: str = "Hello", **kw) -> CompletionRequest:
    kw.setdefault("max_tokens", 4)
    return CompletionRequest(prompt=prompt, **kw)


def assert_for_the_user(err: MemGPTError, url: str) -> None:
    """The message names where, and there is a fix; no traceback text leaks into it."""
    assert url in str(err)
    assert err.fix
    assert "Traceback" not in str(err) and "HTTPConnectionPool" not in str(err)


def test_nothing_listening():
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(BackendUnavailableError) as info:
        LlamaCppBackend(url).complete(request())
    assert "connection refused" in str(info.value)
    assert "OPENAI_API_BASE" in info.value.fix
    assert_for_the_user(info.value, url)


def test_nothing_listening_while_waiting_for_health():
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(BackendUnavailableError):
        LlamaCppBackend(url).wait_until_ready(timeout=5)


def test_wrong_host():
    url = "http://no-such-llama-host.invalid:8080"
    with pytest.raises(BackendUnavailableError) as info:
        LlamaCppBackend(url).count_tokens("hi")
    assert "could not be found" in str(info.value)
    assert "127.0.0.1" in info.value.fix
    assert_for_the_user(info.value, url)


class _Handler(http.server.BaseHTTPRequestHandler):
    """A real local web server that is not llama.cpp: an HTML page everywhere, or a 500 on /completion."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        if self.path == "/completion" and self.server.fail_completion:  # type: ignore[attr-defined]
            status, body, kind = 500, b'{"error": {"code": 500, "message": "out of memory"}}', "application/json"
        else:
            status, body, kind = 200, b"<!DOCTYPE html><html><body><h1>Router login</h1></body></html>", "text/html"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def web_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.fail_completion = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_html_page_instead_of_json(web_server):
    url = f"http://127.0.0.1:{web_server.server_port}"
    with pytest.raises(BackendResponseError) as info:
        LlamaCppBackend(url).complete(request())
    assert "HTML page" in str(info.value)
    assert "Router login" in str(info.value)
    assert_for_the_user(info.value, url)


def test_server_error_5xx(web_server):
    web_server.fail_completion = True
    url = f"http://127.0.0.1:{web_server.server_port}"
    with pytest.raises(BackendHTTPError) as info:
        LlamaCppBackend(url).complete(request())
    assert info.value.status == 500
    assert "out of memory" in str(info.value)
    assert_for_the_user(info.value, url)


def test_not_found_4xx(backend, llama_server):
    # A URL with a path prefix that the real server does not have: it answers its own 404 JSON.
    wrong = LlamaCppBackend(llama_server.url + "/llama")
    with pytest.raises(BackendHTTPError) as info:
        wrong.complete(request())
    assert info.value.status == 404
    assert "File Not Found" in str(info.value)
    assert "http://127.0.0.1:8080" in info.value.fix
    assert_for_the_user(info.value, llama_server.url + "/llama")


def test_invalid_grammar_shows_the_servers_error(backend, llama_server):
    bad = Grammar(format="gbnf", text='root ::= "unclosed')
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(grammar=bad))
    err = info.value
    assert err.status == 400
    assert "failed to parse grammar" in str(err)  # llama.cpp's own words, from its error JSON
    assert "invalid_request_error" in str(err)
    assert "grammar" in err.fix
    assert_for_the_user(err, llama_server.url)


def test_invalid_json_schema_shows_the_servers_error(backend):
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(grammar=Grammar(format="json_schema", text='{"type": "no-such-type"}')))
    assert info.value.status == 400
    assert "no-such-type" in str(info.value)
    assert "JSON schema" in info.value.fix


def test_empty_completion(backend, llama_server):
    # A grammar that can only start with "X", and "X" as a stop string: the server returns "" with stop_type "word".
    empty = request(grammar=Grammar(format="gbnf", text='root ::= "X" [a-z]*'), stop=["X"])
    with pytest.raises(EmptyCompletionError) as info:
        backend.complete(empty)
    assert "'X'" in str(info.value)
    assert_for_the_user(info.value, llama_server.url)


@pytest.fixture(scope="module")
def small_server(llama_programs) -> Iterator[LlamaServer]:
    """A real llama-server with the smallest context it allows (256 tokens), shared by this module's tests."""
    with LlamaServer(ctx_size=256, parallel=1, threads=1) as server:
        yield server


def test_prompt_longer_than_the_context(small_server):
    server = small_server
    backend = LlamaCppBackend(server.url)
    with pytest.raises(ContextOverflowError) as info:
        backend.complete(request("hello " * 400))
    err = info.value
    assert err.context_window == 256
    assert err.prompt_tokens is not None and err.prompt_tokens > 256
    assert err.prompt_tokens == backend.count_tokens("hello " * 400)
    assert "--ctx-size" in err.fix
    assert_for_the_user(err, server.url)


def test_output_that_fills_the_context_is_cut_off(small_server):
    # The prompt fits but prompt + answer does not: the server stops at the context's end, reported as "length".
    result = LlamaCppBackend(small_server.url).complete(
        request("hello " * 250, max_tokens=50, sampling={"temperature": 0, "ignore_eos": True})
    )
    assert result.finish_reason == "length"
    assert result.prompt_tokens is not None and result.completion_tokens is not None
    assert result.completion_tokens < 50
    assert result.prompt_tokens + result.completion_tokens <= 256


def test_timeout(backend, llama_server):
    slow = LlamaCppBackend(llama_server.url, timeout=0.001)
    with pytest.raises(BackendTimeoutError) as info:
        slow.complete(request(max_tokens=16, sampling={"ignore_eos": True}))
    assert "raise MEMGPT_TIMEOUT" in info.value.fix
    assert_for_the_user(info.value, llama_server.url)


def test_loading_server_answers_503_then_becomes_ready(llama_programs):
    # A large context makes llama-server spend over a second allocating it, answering 503 all the while.
    server = LlamaServer(ctx_size=65536, parallel=1).launch()
    try:
        status = None
        while status is None and server.running():
            status = health_status(server.url, timeout=1)
        assert status == 503, "llama-server was ready before the test could see it loading"
        backend = LlamaCppBackend(server.url)
        with pytest.raises(BackendLoadingError) as info:
            backend.count_tokens("hi")
        assert "not ready yet" in str(info.value)
        assert_for_the_user(info.value, server.url)
        seen: list[str] = []
        backend.wait_until_ready(timeout=120, progress=seen.append)
        assert seen and "loading" in seen[0]
        assert backend.count_tokens("hi") > 0
    finally:
        server.stop()


def test_json_schema_that_is_not_json_is_refused_before_sending():
    backend = LlamaCppBackend(f"http://127.0.0.1:{closed_port()}")  # never contacted
    bad = Grammar(format="json_schema", text="{not json", provider="broken-provider")
    with pytest.raises(ConfigError) as info:
        backend.complete(request(grammar=bad))
    assert "broken-provider" in str(info.value)
