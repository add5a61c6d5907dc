"""Every failure a user meets with Ollama, each answered as Ollama answers it (fake_ollama.py), or for real where it
needs no Ollama (a closed port, an unknown host, a web page at the URL): each error names the URL and the fix.

The counterparts of the llama.cpp backend's fault tests, one for one, plus the faults only Ollama has."""

from __future__ import annotations

import json
import re
import time

import pytest
from fake_ollama import BUSY, LOAD_FAILED, OVERFLOW, RUN_FAILED, FakeModel, FakeOllama
from memgpt_backend_ollama import OllamaBackend
from memgpt_backend_ollama.backend import KEEP_ALIVE
from pytest_httpserver import HTTPServer

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

SCHEMA = {"type": "string", "enum": ["yes", "no"]}


def request(prompt: str = "Hello", **kw) -> CompletionRequest:
    kw.setdefault("max_tokens", 4)
    return CompletionRequest(prompt=prompt, **kw)


def assert_for_the_user(err: MemGPTError, url: str) -> None:
    """The message names where, and there is a fix; no traceback text leaks into it."""
    assert url in str(err)
    assert err.fix
    assert "Traceback" not in str(err) and "HTTPConnectionPool" not in str(err)


def the_generate_body(fake: FakeOllama, **expected_options: object) -> dict:
    """The one /api/generate with a prompt that reached the server, checked for what every such request carries."""
    (body,) = [b for b in fake.sent("/api/generate") if b.get("prompt")]
    assert body["raw"] is True and body["stream"] is False and body["think"] is False
    assert body["keep_alive"] == KEEP_ALIVE and body["model"] == "llama3.2"
    for name, value in expected_options.items():
        assert body["options"][name] == value, name
    return body


@pytest.fixture
def backend(ollama: FakeOllama) -> OllamaBackend:
    return OllamaBackend(ollama.url, model="llama3.2", timeout=30)


# -- nothing there ----------------------------------------------------------------------------------------------------


def test_nothing_listening() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(BackendUnavailableError) as info:
        OllamaBackend(url, model="llama3.2").complete(request())
    assert "connection refused" in str(info.value)
    assert "OPENAI_API_BASE" in (info.value.fix or "")
    assert_for_the_user(info.value, url)


def test_nothing_listening_while_waiting_until_ready() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(BackendUnavailableError) as info:
        OllamaBackend(url, model="llama3.2").wait_until_ready(timeout=5)
    assert f"{url}/api/version" in str(info.value), "the first question is Ollama's version"


def test_nothing_listening_without_a_model_name_says_the_server_is_down() -> None:
    # The model list cannot be shown, so the first thing to fix is the server, not the name.
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(BackendUnavailableError):
        OllamaBackend(url).complete(request())


def test_wrong_host() -> None:
    url = "http://no-such-ollama-host.invalid:11434"
    with pytest.raises(BackendUnavailableError) as info:
        OllamaBackend(url, model="llama3.2").wait_until_ready()
    assert "could not be found" in str(info.value)
    assert "127.0.0.1" in (info.value.fix or "")
    assert_for_the_user(info.value, url)


# -- something else at the URL ----------------------------------------------------------------------------------------


def test_html_page_instead_of_json(httpserver: HTTPServer) -> None:
    # A router's login page on that port: every path answers 200 with HTML.
    httpserver.expect_request(re.compile(".*")).respond_with_data(
        "<!DOCTYPE html><html><body><h1>Router login</h1></body></html>", content_type="text/html"
    )
    url = httpserver.url_for("/").rstrip("/")
    with pytest.raises(BackendResponseError) as info:
        OllamaBackend(url, model="llama3.2").complete(request())
    assert "HTML page" in str(info.value) and "Router login" in str(info.value)
    assert_for_the_user(info.value, url)


def test_html_error_page_from_a_proxy(ollama: FakeOllama, backend: OllamaBackend, httpserver: HTTPServer) -> None:
    # A reverse proxy in front of Ollama whose upstream went down: 502 with its own HTML page for the generation.
    httpserver.expect_oneshot_request("/api/generate").respond_with_data(
        "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>",
        status=502,
        content_type="text/html",
    )
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(context_window=2048))
    assert info.value.status == 502 and "502 Bad Gateway" in str(info.value)
    assert_for_the_user(info.value, ollama.url)
    (body,) = [json.loads(req.data) for req, _ in httpserver.log if req.path == "/api/generate"]
    assert body["raw"] is True and body["options"] == {"num_predict": 4, "num_ctx": 2048}


def test_not_found_4xx(ollama: FakeOllama) -> None:
    # A URL with a path prefix Ollama does not have: gin's plain-text 404.
    wrong = OllamaBackend(ollama.url + "/ollama", model="llama3.2")
    with pytest.raises(BackendHTTPError) as info:
        wrong.wait_until_ready()
    assert info.value.status == 404 and "404 page not found" in str(info.value)
    assert "http://127.0.0.1:11434" in (info.value.fix or "")
    assert_for_the_user(info.value, ollama.url + "/ollama")
    assert ollama.paths() == ["/ollama/api/version"]


# -- the server fails -------------------------------------------------------------------------------------------------


def test_server_error_5xx(ollama: FakeOllama, backend: OllamaBackend) -> None:
    ollama.run_fails = True
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(context_window=2048))
    assert info.value.status == 500 and RUN_FAILED in str(info.value)
    assert_for_the_user(info.value, ollama.url)
    the_generate_body(ollama, num_ctx=2048, num_predict=4)


def test_model_that_will_not_load(ollama: FakeOllama, backend: OllamaBackend) -> None:
    ollama.load_fails = True
    with pytest.raises(BackendHTTPError) as info:
        backend.wait_until_ready()
    assert info.value.status == 500 and LOAD_FAILED.strip() in str(info.value)
    assert "log" in (info.value.fix or "") and "smaller model" in (info.value.fix or "")
    assert_for_the_user(info.value, ollama.url)
    assert ollama.sent("/api/generate") == [{"model": "llama3.2", "keep_alive": KEEP_ALIVE}]


def test_busy_server(ollama: FakeOllama, backend: OllamaBackend) -> None:
    ollama.busy = True
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(context_window=2048))
    assert info.value.status == 503 and " ".join(BUSY.split()) in str(info.value)
    assert info.value.body == json.dumps({"error": BUSY})
    assert "OLLAMA_MAX_QUEUE" in (info.value.fix or "")
    the_generate_body(ollama, num_predict=4)


def test_invalid_json_schema_shows_the_servers_error(ollama: FakeOllama, backend: OllamaBackend) -> None:
    bad = {"type": "no-such-type"}
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(grammar=Grammar(format="json_schema", text=json.dumps(bad)), context_window=2048))
    assert info.value.status == 500 and "invalid JSON schema in format" in str(info.value)
    assert "without -grammar" in (info.value.fix or "")
    assert the_generate_body(ollama)["format"] == bad


def test_ollama_older_than_structured_outputs(ollama: FakeOllama, backend: OllamaBackend) -> None:
    ollama.version = "0.4.7"
    with pytest.raises(BackendHTTPError) as info:
        backend.complete(request(grammar=Grammar(format="json_schema", text=json.dumps(SCHEMA)), context_window=2048))
    assert info.value.status == 400 and "cannot unmarshal object" in str(info.value)
    assert "Ollama 0.5 or later" in (info.value.fix or "") and "without -grammar" in (info.value.fix or "")
    assert the_generate_body(ollama)["format"] == SCHEMA


def test_json_schema_that_is_not_json_is_refused_before_sending() -> None:
    backend = OllamaBackend(f"http://127.0.0.1:{closed_port()}", model="llama3.2")  # never contacted
    bad = Grammar(format="json_schema", text="{not json", provider="broken-provider")
    with pytest.raises(ConfigError) as info:
        backend.complete(request(grammar=bad))
    assert "broken-provider" in str(info.value)


def test_a_gbnf_grammar_is_refused_before_sending(ollama: FakeOllama, backend: OllamaBackend) -> None:
    with pytest.raises(ConfigError, match="JSON-schema") as info:
        backend.complete(request(grammar=Grammar(format="gbnf", text='root ::= "yes"')))
    assert backend.endpoint in str(info.value)
    assert not ollama.paths(), "the grammar is checked before anything is sent"


def test_empty_completion(ollama: FakeOllama, backend: OllamaBackend) -> None:
    # The model's answer starts with a stop string: Ollama returns "" (the stop string is never returned).
    ollama.answers = ["</s> and then more"]
    with pytest.raises(EmptyCompletionError) as info:
        backend.complete(request(stop=["</s>"], context_window=2048))
    assert "empty completion" in str(info.value)
    assert_for_the_user(info.value, ollama.url)
    the_generate_body(ollama, stop=["</s>"])


def test_an_embedding_model_cannot_generate(ollama: FakeOllama) -> None:
    ollama.add(FakeModel("nomic-embed-text:latest", architecture="nomic-bert", capabilities=("embedding",)))
    with pytest.raises(ConfigError) as info:
        OllamaBackend(ollama.url, model="nomic-embed-text").complete(request(context_window=512))
    assert "embedding model" in str(info.value) and "does not support generate" in str(info.value)
    assert "MEMGPT_MODEL_NAME" in (info.value.fix or "")
    (body,) = ollama.sent("/api/generate")
    assert body["model"] == "nomic-embed-text" and body["raw"] is True


# -- the context ------------------------------------------------------------------------------------------------------


def test_prompt_longer_than_the_context(ollama: FakeOllama, backend: OllamaBackend) -> None:
    # Counted before sending (the documented estimate), since Ollama would cut it silently.
    with pytest.raises(ContextOverflowError) as info:
        backend.complete(request("hello " * 400, context_window=512))
    err = info.value
    assert err.context_window == 512 and err.prompt_tokens == 800
    assert "silently" in str(err) and "OLLAMA_CONTEXT_LENGTH" in (err.fix or "")
    assert_for_the_user(err, ollama.url)
    assert not ollama.sent("/api/generate")


def test_prompt_longer_than_the_context_that_ollama_refuses(ollama: FakeOllama, backend: OllamaBackend) -> None:
    # An Ollama whose context is unknown here (no context_length in /api/ps before 0.9.7, no num_ctx in the
    # Modelfile) with context shift off: its own 400 becomes the agent's overflow path.
    ollama.version = "0.9.6"
    ollama.context_shift = False
    backend.wait_until_ready()
    assert backend.context_window() is None
    with pytest.raises(ContextOverflowError) as info:
        backend.complete(request("hello " * 6000))
    err = info.value
    assert "longer than the context length" in str(err) and OVERFLOW in str(err)
    assert err.context_window is None, "the agent then shrinks to the prompt it sent"
    assert_for_the_user(err, ollama.url)
    assert "num_ctx" not in the_generate_body(ollama)["options"]


def test_output_that_reaches_the_token_cap_is_cut_off(ollama: FakeOllama, backend: OllamaBackend) -> None:
    done = backend.complete(request("Tell me a story.", max_tokens=5, context_window=2048))
    assert done.finish_reason == "length" and done.completion_tokens == 5
    the_generate_body(ollama, num_predict=5, num_ctx=2048)


# -- slow servers -----------------------------------------------------------------------------------------------------


def test_timeout(ollama: FakeOllama) -> None:
    ollama.load_seconds = 1.0  # the first request loads the model
    slow = OllamaBackend(ollama.url, model="llama3.2", timeout=0.2)
    with pytest.raises(BackendTimeoutError) as info:
        slow.complete(request(context_window=2048))
    assert "MEMGPT_TIMEOUT" in (info.value.fix or "")
    assert_for_the_user(info.value, ollama.url)
    ollama.settle()
    the_generate_body(ollama, num_ctx=2048)


def test_loading_model_is_announced_then_ready(ollama: FakeOllama, backend: OllamaBackend) -> None:
    ollama.load_seconds = 0.5
    seen: list[str] = []
    began = time.monotonic()
    backend.wait_until_ready(timeout=30, progress=seen.append)
    assert time.monotonic() - began >= 0.5, "wait_until_ready returns once the model is loaded"
    assert seen == [f"Ollama at {ollama.url} is loading llama3.2 into memory"]
    assert ollama.loaded == {"llama3.2:latest": 8192}
    done = backend.complete(request())
    assert done.timings is not None and done.text
    the_generate_body(ollama, num_ctx=8192)
    assert ollama.loads == 1, "the completion used the model as loaded"


def test_model_still_loading_after_the_wait(ollama: FakeOllama, backend: OllamaBackend) -> None:
    ollama.load_seconds = 1.0
    with pytest.raises(BackendLoadingError) as info:
        backend.wait_until_ready(timeout=0.2)
    assert "still loading llama3.2" in str(info.value) and "ollama ps" in (info.value.fix or "")
    assert_for_the_user(info.value, ollama.url)
    ollama.settle()
    assert ollama.sent("/api/generate") == [{"model": "llama3.2", "keep_alive": KEEP_ALIVE}]


# -- keys -------------------------------------------------------------------------------------------------------------


def test_api_key_is_sent_as_bearer_and_never_shown(ollama: FakeOllama) -> None:
    # Ollama behind an authenticating proxy (or ollama.com): the key goes as a bearer token.
    secret = "ollama-key-24680"
    ollama.busy = True
    with pytest.raises(BackendHTTPError) as info:
        OllamaBackend(ollama.url, model="llama3.2", api_key=secret).complete(request(context_window=2048))
    assert secret not in str(info.value)
    assert {req.headers.get("Authorization") for req, _ in ollama.server.log} == {f"Bearer {secret}"}
    the_generate_body(ollama)
