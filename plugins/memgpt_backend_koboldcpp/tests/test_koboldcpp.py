"""The koboldcpp backend against a fake that answers as KoboldCpp's server (koboldcpp.py) does, field for field,
including its error answers. KoboldCpp cannot run here; every test checks the request body the backend sent."""

from __future__ import annotations

import json
import re

import pytest
from memgpt_backend_koboldcpp import KoboldCppBackend
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from memgpt_core.errors import (
    BackendHTTPError,
    BackendResponseError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
)
from memgpt_core.models import CompletionRequest, Grammar
from memgpt_core.testing import BackendConformance

GBNF = 'root ::= "yes" | "no"'
UNAUTHORIZED = {
    "detail": {"error": "Unauthorized", "msg": "Authentication key is missing or invalid.", "type": "unauthorized"}
}


class TestKoboldCppConformance(BackendConformance):
    backend_class = KoboldCppBackend


def _sent(httpserver: HTTPServer, path: str) -> list[dict]:
    return [json.loads(req.data) for req, _ in httpserver.log if req.path == path]


@pytest.fixture
def kobold(httpserver: HTTPServer) -> HTTPServer:
    """A KoboldCpp started with --contextsize 4096, serving a model, counting 1 token per 4 characters."""

    def tokencount(request: Request) -> Response:
        prompt = json.loads(request.data).get("prompt", "")
        count = max(1, len(prompt) // 4)
        return Response(json.dumps({"value": count, "ids": list(range(count))}), content_type="application/json")

    httpserver.expect_request("/api/extra/tokencount", method="POST").respond_with_handler(tokencount)
    httpserver.expect_request("/api/extra/true_max_context_length", method="GET").respond_with_json({"value": 4096})
    httpserver.expect_request("/api/v1/model", method="GET").respond_with_json({"result": "koboldcpp/mistral-7b.Q5"})
    return httpserver


def test_generate_sends_koboldcpps_fields(kobold: HTTPServer) -> None:
    kobold.expect_request("/api/v1/generate", method="POST").respond_with_json(
        {"results": [{"text": "yes", "finish_reason": "stop"}]}
    )
    backend = KoboldCppBackend(kobold.url_for("/"))
    done = backend.complete(
        CompletionRequest(
            prompt="Is it? Answer:",
            max_tokens=16,
            stop=["\nUSER:", "</s>"],
            grammar=Grammar(format="gbnf", text=GBNF),
            context_window=2048,
            sampling={"temperature": 0.3, "seed": 7, "repeat_penalty": 1.1},
        )
    )
    assert done.text == "yes" and done.finish_reason == "stop" and done.prompt_tokens == 3
    (sent,) = _sent(kobold, "/api/v1/generate")
    assert sent == {
        "prompt": "Is it? Answer:",
        "max_length": 16,
        "max_context_length": 2048,
        "stop_sequence": ["\nUSER:", "</s>"],
        "trim_stop": True,
        "grammar": GBNF,
        "grammar_retain_state": False,
        "temperature": 0.3,
        "sampler_seed": 7,
        "rep_pen": 1.1,
    }
    assert "stop" not in sent, "KoboldCpp ignores `stop`: the stop strings must go in stop_sequence"


def test_without_a_window_the_servers_real_context_is_used(kobold: HTTPServer) -> None:
    kobold.expect_request("/api/v1/generate").respond_with_json({"results": [{"text": " ok", "finish_reason": "stop"}]})
    backend = KoboldCppBackend(kobold.url_for("/"))
    backend.complete(CompletionRequest(prompt="Hello", max_tokens=4))
    backend.complete(CompletionRequest(prompt="Hello again", max_tokens=4))
    assert [body["max_context_length"] for body in _sent(kobold, "/api/v1/generate")] == [4096, 4096]
    asked = [req.path for req, _ in kobold.log].count("/api/extra/true_max_context_length")
    assert asked == 1, "the server's context is read once per backend, not per request"


def test_token_count_context_and_model(kobold: HTTPServer) -> None:
    backend = KoboldCppBackend(kobold.url_for("/"))
    assert backend.count_tokens("x" * 40) == 10
    assert _sent(kobold, "/api/extra/tokencount") == [{"prompt": "x" * 40}]
    assert backend.context_window() == 4096
    assert backend.model_name() == "koboldcpp/mistral-7b.Q5"


def test_length_finish_and_stop_trimming(kobold: HTTPServer) -> None:
    # A KoboldCpp that ignores trim_stop leaves the stop string in the text.
    kobold.expect_request("/api/v1/generate").respond_with_json(
        {"results": [{"text": '{"a": 1}\nUSER: more', "finish_reason": "length"}]}
    )
    done = KoboldCppBackend(kobold.url_for("/")).complete(
        CompletionRequest(prompt="x", max_tokens=8, stop=["\nUSER:"], context_window=1024)
    )
    assert done.text == '{"a": 1}' and done.finish_reason == "length"


def test_prompt_that_koboldcpp_would_silently_cut_is_refused(kobold: HTTPServer) -> None:
    backend = KoboldCppBackend(kobold.url_for("/"))
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete(CompletionRequest(prompt="y" * 4000, max_tokens=100, context_window=1024))
    assert caught.value.prompt_tokens == 1000 and caught.value.context_window == 1024
    assert "--contextsize" in str(caught.value)
    assert not _sent(kobold, "/api/v1/generate"), "an overflowing prompt must not be sent"


def test_password_is_sent_as_bearer_and_never_shown(kobold: HTTPServer) -> None:
    password = "kobold-pass-5678"

    def generate(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {password}":
            return Response(json.dumps(UNAUTHORIZED), status=401, content_type="application/json")
        return Response(
            json.dumps({"results": [{"text": "ok", "finish_reason": "stop"}]}), content_type="application/json"
        )

    kobold.expect_request("/api/v1/generate").respond_with_handler(generate)
    ok = KoboldCppBackend(kobold.url_for("/"), api_key=password).complete(
        CompletionRequest(prompt="x", max_tokens=2, context_window=512)
    )
    assert ok.text == "ok"
    with pytest.raises(BackendHTTPError) as caught:
        KoboldCppBackend(kobold.url_for("/"), api_key="wrong-one-999").complete(
            CompletionRequest(prompt="x", max_tokens=2, context_window=512)
        )
    assert caught.value.status == 401 and "Authentication key is missing or invalid" in str(caught.value)
    assert "MEMGPT_API_KEY" in str(caught.value) and "wrong-one-999" not in str(caught.value)


def test_busy_server(kobold: HTTPServer) -> None:
    busy = {"detail": {"msg": "Server is busy; please try again later.", "type": "service_unavailable"}}
    kobold.expect_request("/api/v1/generate").respond_with_json(busy, status=503)
    with pytest.raises(BackendHTTPError) as caught:
        KoboldCppBackend(kobold.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=2, context_window=512))
    assert caught.value.status == 503 and "busy" in str(caught.value)


def test_wrong_path_answer(httpserver: HTTPServer) -> None:
    # KoboldCpp's answer for a path it does not serve, here for every path (a URL with a wrong prefix).
    httpserver.expect_request(re.compile(".*")).respond_with_data(
        "Error: HTTP Server is running, but this endpoint does not exist. Please check the URL.",
        status=404,
        content_type="text/html",
    )
    with pytest.raises(BackendHTTPError) as caught:
        KoboldCppBackend(httpserver.url_for("/")).complete(
            CompletionRequest(prompt="x", max_tokens=2, context_window=512)
        )
    assert caught.value.status == 404 and "OPENAI_API_BASE" in str(caught.value)


def test_empty_and_malformed_answers(kobold: HTTPServer) -> None:
    kobold.expect_request("/api/v1/generate").respond_with_json({"results": [{"text": "", "finish_reason": "stop"}]})
    with pytest.raises(EmptyCompletionError):
        KoboldCppBackend(kobold.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=2, context_window=512))
    kobold.clear()
    kobold.expect_request("/api/extra/tokencount").respond_with_json({"value": 1, "ids": [1]})
    kobold.expect_request("/api/v1/generate").respond_with_json({"data": {"seqs": ["x"]}})
    with pytest.raises(BackendResponseError):
        KoboldCppBackend(kobold.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=2, context_window=512))


def test_refuses_a_json_schema_grammar(kobold: HTTPServer) -> None:
    backend = KoboldCppBackend(kobold.url_for("/"))
    with pytest.raises(ConfigError, match="GBNF") as caught:
        backend.complete(
            CompletionRequest(
                prompt="x", max_tokens=2, context_window=512, grammar=Grammar(format="json_schema", text="{}")
            )
        )
    assert backend.endpoint in str(caught.value)
    assert not kobold.log, "the grammar is checked before anything is sent, the token count included"


@pytest.mark.parametrize(
    "pasted",
    [
        "http://127.0.0.1:5001/api/v1/generate",
        "http://127.0.0.1:5001/api/v1",
        "http://127.0.0.1:5001/v1",
        "http://127.0.0.1:5001/api/extra/generate/stream",
        "127.0.0.1:5001/",
    ],
)
def test_pasted_urls_are_normalised(pasted: str) -> None:
    assert KoboldCppBackend(pasted).endpoint == "http://127.0.0.1:5001"


def test_https_to_a_local_port_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"http://localhost:5001"):
        KoboldCppBackend("https://localhost:5001")
