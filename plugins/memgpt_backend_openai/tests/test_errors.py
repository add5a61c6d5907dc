"""Every failure the llamacpp backend's tests produce (plugins/memgpt_backend_llamacpp/tests/test_errors.py), met
through the openai backend on the real llama-server's /v1 and through the vllm backend on the fake vLLM: each error
names the URL and the fix."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_vllm import FakeVLLM
from memgpt_backend_llamacpp.server import LlamaServer, health_status
from memgpt_backend_openai import OpenAIBackend, VLLMBackend

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

BACKENDS = [OpenAIBackend, VLLMBackend]


def request(prompt: str = "Hello", **kw: Any) -> CompletionRequest:
    kw.setdefault("max_tokens", 4)
    return CompletionRequest(prompt=prompt, **kw)


def assert_for_the_user(err: MemGPTError, url: str) -> None:
    """The message names where, and there is a fix; no traceback text leaks into it."""
    assert url in str(err)
    assert err.fix
    assert "Traceback" not in str(err) and "HTTPConnectionPool" not in str(err)


@pytest.fixture
def backend(llama_server: Any) -> OpenAIBackend:
    return OpenAIBackend(llama_server.url, timeout=120)


# -- nothing there -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend_class", BACKENDS)
def test_nothing_listening(backend_class: type) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(BackendUnavailableError) as info:
        backend_class(url).complete(request())
    assert "connection refused" in str(info.value) and "OPENAI_API_BASE" in str(info.value.fix)
    assert_for_the_user(info.value, url)


@pytest.mark.parametrize("backend_class", BACKENDS)
def test_nothing_listening_while_waiting(backend_class: type) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    began = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        backend_class(url).wait_until_ready(timeout=30)
    assert time.monotonic() - began < 10, "nothing answering is said at once, not after the timeout"
    if backend_class is VLLMBackend:  # vLLM refuses connections while it loads its model
        assert "Application startup complete" in str(info.value.fix)


@pytest.mark.parametrize("backend_class", BACKENDS)
def test_wrong_host(backend_class: type) -> None:
    url = "http://no-such-llm-host.invalid:8000"
    with pytest.raises(BackendUnavailableError) as info:
        backend_class(url).complete(request())
    assert "could not be found" in str(info.value) and "127.0.0.1" in str(info.value.fix)
    assert_for_the_user(info.value, url)


# -- something else answers --------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """A real local web server that is not an LLM server: an HTML page everywhere, or, as a broken server would,
    the model list and then a 500 with an OpenAI-style error for every completion."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        broken = self.server.broken  # type: ignore[attr-defined]
        if broken and self.path == "/v1/models":
            status, body, kind = 200, json.dumps({"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]}), "json"
        elif broken and self.path == "/v1/completions":
            error = {"message": "CUDA out of memory", "type": "InternalServerError", "param": None, "code": 500}
            status, body, kind = 500, json.dumps({"error": error}), "json"
        elif broken:
            status, body, kind = 404, json.dumps({"detail": "Not Found"}), "json"
        else:
            status, body, kind = 200, "<!DOCTYPE html><html><body><h1>Router login</h1></body></html>", "html"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if kind == "json" else "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def web_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.broken = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("backend_class", BACKENDS)
def test_html_page_instead_of_json(web_server: http.server.HTTPServer, backend_class: type) -> None:
    url = f"http://127.0.0.1:{web_server.server_port}"
    with pytest.raises(BackendResponseError) as info:
        backend_class(url).complete(request())
    assert "HTML page" in str(info.value) and "Router login" in str(info.value)
    assert_for_the_user(info.value, url)


@pytest.mark.parametrize("backend_class", BACKENDS)
def test_server_error_5xx(web_server: http.server.HTTPServer, backend_class: type) -> None:
    web_server.broken = True  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{web_server.server_port}"
    with pytest.raises(BackendHTTPError) as info:
        backend_class(url).complete(request())
    assert info.value.status == 500 and "CUDA out of memory" in str(info.value)
    assert_for_the_user(info.value, url)


def test_proxy_html_error_page(vllm: FakeVLLM) -> None:
    # nginx in front of a vLLM that is down: 502 with its HTML page.
    page = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    vllm.httpserver.clear()
    vllm.httpserver.expect_request("/v1/models").respond_with_data(page, status=502, content_type="text/html")
    with pytest.raises(BackendHTTPError) as info:
        VLLMBackend(vllm.url).complete(request())
    assert info.value.status == 502 and "502 Bad Gateway" in str(info.value) and "proxy" in str(info.value.fix)
    assert_for_the_user(info.value, vllm.url)


def test_not_found_4xx(llama_server: Any) -> None:
    # A URL with a path prefix that the real server does not have: it answers its own 404 JSON.
    wrong = OpenAIBackend(llama_server.url + "/llama")
    with pytest.raises(BackendHTTPError) as info:
        wrong.complete(request())
    assert info.value.status == 404 and "File Not Found" in str(info.value)
    assert "http://127.0.0.1:8080" in str(info.value.fix) and "BACKEND_TYPE=openai" in str(info.value.fix)
    assert_for_the_user(info.value, llama_server.url + "/llama")


def test_not_found_4xx_on_vllm(vllm: FakeVLLM) -> None:
    with pytest.raises(BackendHTTPError) as info:
        VLLMBackend(vllm.url + "/llm").complete(request())
    assert info.value.status == 404 and "Not Found" in str(info.value)
    assert "http://127.0.0.1:8000" in str(info.value.fix) and "BACKEND_TYPE=vllm" in str(info.value.fix)


# -- the request is refused --------------------------------------------------------------------------------------------


def test_invalid_grammar_shows_the_servers_error(backend: OpenAIBackend, llama_server: Any) -> None:
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(grammar=Grammar(format="gbnf", text='root ::= "unclosed')))
    err = info.value
    assert err.status == 400 and "failed to parse grammar" in str(err)  # llama.cpp's own words
    assert "GBNF" in str(err.fix)
    assert_for_the_user(err, llama_server.url)


def test_invalid_json_schema_shows_the_servers_error(backend: OpenAIBackend) -> None:
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(grammar=Grammar(format="json_schema", text='{"type": "no-such-type"}')))
    assert info.value.status == 400 and "no-such-type" in str(info.value)
    assert "JSON schema" in str(info.value.fix)


def test_invalid_json_schema_on_vllm(vllm: FakeVLLM) -> None:
    with pytest.raises(BackendHTTPError) as info:
        VLLMBackend(vllm.url).complete(request(grammar=Grammar(format="json_schema", text='{"type": "no-such-type"}')))
    assert info.value.status == 400 and "Failed to transform json schema into a grammar" in str(info.value)
    assert "JSON schema" in str(info.value.fix)


@pytest.mark.parametrize("backend_class", BACKENDS)
def test_json_schema_that_is_not_json_is_refused_before_sending(backend_class: type, vllm: FakeVLLM) -> None:
    backend = backend_class(vllm.url)  # the fake vLLM: the openai backend finds the vLLM dialect there
    bad = Grammar(format="json_schema", text="{not json", provider="broken-provider")
    with pytest.raises(ConfigError) as info:
        backend.complete(request(grammar=bad))
    assert "broken-provider" in str(info.value)
    assert not vllm.sent("/v1/completions")


def test_empty_completion(backend: OpenAIBackend, llama_server: Any) -> None:
    # A grammar that can only start with "X", and "X" as a stop string: the server returns "".
    with pytest.raises(EmptyCompletionError) as info:
        backend.complete(request(grammar=Grammar(format="gbnf", text='root ::= "X" [a-z]*'), stop=["X"]))
    assert "prompt format" in str(info.value.fix)
    assert_for_the_user(info.value, llama_server.url)


def test_empty_completion_on_vllm(vllm: FakeVLLM) -> None:
    with pytest.raises(EmptyCompletionError) as info:
        VLLMBackend(vllm.url).complete(request(stop=["the"]))  # the toy model's first word
    assert_for_the_user(info.value, vllm.url)


# -- the context -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(llama_programs: Any) -> Iterator[LlamaServer]:
    """A real llama-server with the smallest context it allows (256 tokens), shared by this module's tests."""
    with LlamaServer(ctx_size=256, parallel=1, threads=1) as server:
        yield server


def test_prompt_longer_than_the_context(small_server: LlamaServer) -> None:
    backend = OpenAIBackend(small_server.url)
    with pytest.raises(ContextOverflowError) as info:
        backend.complete(request("hello " * 400))
    err = info.value
    assert err.context_window == 256 == backend.context_window()
    assert err.prompt_tokens is not None and err.prompt_tokens == backend.count_tokens("hello " * 400) > 256
    assert "-c" in str(err.fix)
    assert_for_the_user(err, small_server.url)


def test_output_that_fills_the_context_is_cut_off(small_server: LlamaServer) -> None:
    # llama.cpp: the prompt fits but prompt + answer does not; it stops at the context's end, reported as "length".
    # (vLLM refuses such a request instead: test_the_answer_does_not_fit_beside_the_prompt in test_vllm.py.)
    done = OpenAIBackend(small_server.url).complete(request("hello " * 250, max_tokens=50, ban_eos=True))
    assert done.finish_reason == "length"
    assert done.prompt_tokens is not None and done.completion_tokens is not None and done.completion_tokens < 50
    assert done.prompt_tokens + done.completion_tokens <= 256


def test_prompt_longer_than_the_context_on_vllm(vllm: FakeVLLM) -> None:
    vllm.max_model_len = 256
    with pytest.raises(ContextOverflowError) as info:
        VLLMBackend(vllm.url).complete(request("hello " * 400))
    assert info.value.context_window == 256 and info.value.prompt_tokens == 401
    assert_for_the_user(info.value, vllm.url)


# -- slow, and not ready yet ------------------------------------------------------------------------------------------


def test_timeout(llama_server: Any) -> None:
    slow = OpenAIBackend(llama_server.url, timeout=120)
    slow.wait_until_ready()
    slow.timeout = 0.001
    with pytest.raises(BackendTimeoutError) as info:
        slow.complete(request(max_tokens=16, ban_eos=True))
    assert "MEMGPT_TIMEOUT" in str(info.value.fix)
    assert_for_the_user(info.value, llama_server.url)


def test_timeout_on_vllm(vllm: FakeVLLM) -> None:
    def slow(request: Any) -> Any:
        time.sleep(1.0)
        from werkzeug import Response

        return Response("{}", content_type="application/json")

    backend = VLLMBackend(vllm.url, timeout=120)
    backend.wait_until_ready(timeout=5)
    vllm.httpserver.clear()
    vllm.httpserver.expect_request("/v1/completions").respond_with_handler(slow)
    backend.timeout = 0.2
    with pytest.raises(BackendTimeoutError) as info:
        backend.complete(request())
    assert_for_the_user(info.value, vllm.url)


def test_loading_server_answers_503_then_becomes_ready(llama_programs: Any) -> None:
    # A large context makes llama-server spend over a second allocating it, answering 503 all the while.
    server = LlamaServer(ctx_size=65536, parallel=1).launch()
    try:
        status = None
        while status is None and server.running():
            status = health_status(server.url, timeout=1)
        assert status == 503, "llama-server was ready before the test could see it loading"
        backend = OpenAIBackend(server.url)
        with pytest.raises(BackendLoadingError) as info:
            backend.complete(request())
        assert "not ready yet" in str(info.value)
        assert_for_the_user(info.value, server.url)
        seen: list[str] = []
        backend.wait_until_ready(timeout=120, progress=seen.append)
        assert seen and "loading" in seen[0]
        assert backend.complete(request()).text
    finally:
        server.stop()


def test_loading_vllm_behind_a_proxy_then_ready(vllm: FakeVLLM) -> None:
    vllm.loading_answers = 3  # the proxy answers 503 until vLLM is up
    backend = VLLMBackend(vllm.url)
    with pytest.raises(BackendLoadingError) as info:
        backend.complete(request())
    assert "503" in str(info.value) and "Service Temporarily Unavailable" in str(info.value)
    seen: list[str] = []
    backend.wait_until_ready(timeout=30, progress=seen.append)
    assert len(seen) == 2 and "loading" in seen[0]
    assert backend.complete(request()).text


def test_loading_that_never_ends_gives_up_with_the_fix(vllm: FakeVLLM) -> None:
    vllm.loading_answers = 10_000
    with pytest.raises(BackendLoadingError) as info:
        VLLMBackend(vllm.url).wait_until_ready(timeout=1)
    assert "still not ready after 1 s" in str(info.value) and "longer" in str(info.value.fix)
