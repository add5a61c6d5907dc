"""The webui and webui-legacy backends: the OpenAI completion shape against the real llama-server, and
text-generation-webui's own fields (grammar_string, truncation_length, token-count, model info, legacy API)
against fakes that answer as text-generation-webui's API code does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from memgpt_backend_webui import WebUIBackend, WebUILegacyBackend
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from memgpt_core.errors import (
    BackendError,
    BackendHTTPError,
    BackendResponseError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
)
from memgpt_core.models import CompletionRequest, Grammar
from memgpt_core.testing import BackendConformance

GBNF = 'root ::= "yes" | "no"'


# -- conformance kit --------------------------------------------------------------------------------------------------


class TestWebUIConformance(BackendConformance):
    """webui's completion path is OpenAI's, so the live checks run against the real llama-server."""

    backend_class = WebUIBackend

    @pytest.fixture
    def endpoint(self, llama_server: Any) -> str:
        return llama_server.url

    def test_live_token_count_and_context(self, live_backend: Any) -> None:
        pytest.skip("llama-server has no /v1/internal/token-count; webui's counting is checked against the fake below")

    def test_live_grammar_constrains_the_output(self, live_backend: Any) -> None:
        pytest.skip("llama-server ignores webui's grammar_string field; the field is checked against the fake below")


class TestWebUILegacyConformance(BackendConformance):
    backend_class = WebUILegacyBackend


# -- the real llama-server, through the OpenAI-compatible path -------------------------------------------------------


def test_completion_on_llama_server_reads_text_usage_and_stop(llama_server: Any) -> None:
    backend = WebUIBackend(llama_server.url + "/v1")  # the doubled /v1 MemGPT users pasted
    assert backend.endpoint == llama_server.url
    done = backend.complete(
        CompletionRequest(
            prompt="The capital of France is",
            max_tokens=6,
            stop=["."],
            context_window=llama_server.n_ctx,
            sampling={"temperature": 0, "seed": 1},
        )
    )
    assert done.text.strip(), "no text came back"
    assert "." not in done.text, "the stop string was not honoured"
    assert done.prompt_tokens and done.prompt_tokens > 0
    assert done.completion_tokens is not None and 0 < done.completion_tokens <= 6
    # An OpenAI-compatible server without webui's token-count route: the guard steps aside, nothing breaks.
    assert backend.count_tokens("hello") is None


# -- fakes: text-generation-webui's own fields and answers -------------------------------------------------------------


def _completion(text: str, *, finish: str = "stop", prompt_tokens: int = 12, completion_tokens: int = 5) -> dict:
    """A /v1/completions answer shaped as text-generation-webui's completions_common builds it."""
    return {
        "id": "conv-1700000000000000000",
        "object": "text_completion",
        "created": 1700000000,
        "model": "TheBloke_dolphin-2.2.1-mistral-7B-GGUF",
        "choices": [{"index": 0, "finish_reason": finish, "text": text, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _bodies(httpserver: HTTPServer, path: str) -> list[dict]:
    return [json.loads(req.data) for req, _ in httpserver.log if req.path == path]


def test_webui_sends_its_own_fields(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/internal/token-count", method="POST").respond_with_json({"length": 40})
    httpserver.expect_request("/v1/completions", method="POST").respond_with_json(_completion("yes"))
    backend = WebUIBackend(httpserver.url_for("/"))
    done = backend.complete(
        CompletionRequest(
            prompt="Is it? Answer:",
            max_tokens=16,
            stop=["\nUSER:"],
            grammar=Grammar(format="gbnf", text=GBNF),
            context_window=4096,
            sampling={"temperature": 0.2, "top_k": 40},
        )
    )
    assert done.text == "yes" and done.finish_reason == "stop"
    assert done.prompt_tokens == 12 and done.completion_tokens == 5
    assert done.model == "TheBloke_dolphin-2.2.1-mistral-7B-GGUF"
    (sent,) = _bodies(httpserver, "/v1/completions")
    assert sent == {
        "prompt": "Is it? Answer:",
        "max_tokens": 16,
        "stop": ["\nUSER:"],
        "stream": False,
        "truncation_length": 4096,
        "grammar_string": GBNF,
        "temperature": 0.2,
        "top_k": 40,
    }
    assert _bodies(httpserver, "/v1/internal/token-count") == [{"text": "Is it? Answer:"}]


def test_webui_length_finish_is_reported(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/completions").respond_with_json(_completion("one two", finish="length"))
    done = WebUIBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="Count:", max_tokens=2))
    assert done.finish_reason == "length"


def test_webui_refuses_a_prompt_it_would_silently_truncate(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"length": 1000})
    backend = WebUIBackend(httpserver.url_for("/"))
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete(CompletionRequest(prompt="long " * 900, max_tokens=100, context_window=1024))
    assert caught.value.prompt_tokens == 1000 and caught.value.context_window == 1024
    assert not _bodies(httpserver, "/v1/completions"), "an overflowing prompt must not be sent"


def test_webui_without_usage_reports_its_own_count_and_the_servers_timings(httpserver: HTTPServer) -> None:
    answer = _completion("yes")
    del answer["usage"]
    answer["timings"] = {"prompt_n": 40, "prompt_ms": 12.5, "predicted_n": 1, "predicted_ms": 9.0, "cache_n": 0}
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"length": 40})
    httpserver.expect_request("/v1/completions").respond_with_json(answer)
    done = WebUIBackend(httpserver.url_for("/")).complete(
        CompletionRequest(prompt="Is it?", max_tokens=4, context_window=4096)
    )
    assert done.prompt_tokens == 40 and done.completion_tokens is None
    assert done.timings is not None and done.timings.prompt_ms == 12.5 and done.timings.cache_n == 0


def test_webui_answer_without_choices_names_the_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/completions").respond_with_json({"results": [{"text": "yes"}]})
    with pytest.raises(BackendResponseError) as caught:
        WebUIBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert caught.value.url == httpserver.url_for("/v1/completions")
    assert "text-generation-webui" in str(caught.value) and "BACKEND_TYPE" in str(caught.value)


def test_webui_reads_the_older_token_count_shape(httpserver: HTTPServer) -> None:
    # Versions before the typed API answered {"results": [{"tokens": N}]}.
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"results": [{"tokens": 7}]})
    assert WebUIBackend(httpserver.url_for("/")).count_tokens("hello there") == 7


# With no model loaded, text-generation-webui's encode() raises ValueError('No tokenizer is loaded') before generating.
# The FastAPI app (--api) has no handler for it: Starlette answers 500 with its plain-text page. The openai extension
# before November 2023 answered 500 with the exception in its error JSON.
NO_TOKENIZER_BODIES = [
    ("Internal Server Error", "text/plain; charset=utf-8"),
    (
        json.dumps(
            {
                "error": {
                    "message": "ValueError('No tokenizer is loaded')",
                    "code": 500,
                    "type": "OpenAIError",
                    "param": "",
                }
            }
        ),
        "application/json",
    ),
]


@pytest.mark.parametrize(("body", "content_type"), NO_TOKENIZER_BODIES)
def test_webui_with_no_model_loaded_says_to_load_one(httpserver: HTTPServer, body: str, content_type: str) -> None:
    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "None", "lora_names": []})
    httpserver.expect_request("/v1/completions").respond_with_data(body, status=500, content_type=content_type)
    backend = WebUIBackend(httpserver.url_for("/"))
    assert backend.model_name() == "None"
    with pytest.raises(BackendError) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert not isinstance(caught.value, (EmptyCompletionError, BackendHTTPError))
    assert "no model loaded" in str(caught.value) and "Model tab" in str(caught.value)
    assert caught.value.url == httpserver.url_for("/v1/completions")


def test_webui_with_no_model_loaded_fails_already_at_the_token_count(httpserver: HTTPServer) -> None:
    # With a context window the prompt is counted first, and the token-count route fails the same way.
    httpserver.expect_request("/v1/internal/token-count").respond_with_data("Internal Server Error", status=500)
    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "None", "lora_names": []})
    with pytest.raises(BackendError) as caught:
        WebUIBackend(httpserver.url_for("/")).complete(
            CompletionRequest(prompt="Hi", max_tokens=4, context_window=2048)
        )
    assert "no model loaded" in str(caught.value) and "Model tab" in str(caught.value)
    assert not _bodies(httpserver, "/v1/completions")


def test_webui_500_with_a_model_loaded_stays_a_server_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "mistral", "lora_names": []})
    httpserver.expect_request("/v1/completions").respond_with_data("Internal Server Error", status=500)
    with pytest.raises(BackendHTTPError) as caught:
        WebUIBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert caught.value.status == 500 and "Internal Server Error" in str(caught.value)
    assert caught.value.fix is not None and "log" in caught.value.fix


def test_legacy_with_no_model_loaded_answers_empty_text(httpserver: HTTPServer) -> None:
    # The old API's generate_reply logs "No model is loaded!" and yields '', answered with status 200.
    httpserver.expect_request("/api/v1/model").respond_with_json({"result": "None"})
    httpserver.expect_request("/api/v1/generate").respond_with_json({"results": [{"text": ""}]})
    with pytest.raises(BackendError) as caught:
        WebUILegacyBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert not isinstance(caught.value, EmptyCompletionError)
    assert "no model loaded" in str(caught.value) and "Model tab" in str(caught.value)


@pytest.mark.parametrize(
    ("backend_class", "path"), [(WebUIBackend, "/v1/completions"), (WebUILegacyBackend, "/api/v1/generate")]
)
def test_ban_eos_becomes_ban_eos_token(httpserver: HTTPServer, backend_class: type, path: str) -> None:
    httpserver.expect_request("/v1/completions").respond_with_json(_completion("on and on"))
    httpserver.expect_request("/api/v1/generate").respond_with_json({"results": [{"text": "on and on"}]})
    httpserver.expect_request("/api/v1/token-count").respond_with_json({"results": [{"tokens": 3}]})
    backend = backend_class(httpserver.url_for("/"))
    backend.complete(CompletionRequest(prompt="Go", max_tokens=3, ban_eos=True))
    backend.complete(CompletionRequest(prompt="Go", max_tokens=3))
    with_ban, without = _bodies(httpserver, path)
    assert with_ban["ban_eos_token"] is True and "ban_eos_token" not in without


def test_webui_empty_answer_is_an_empty_completion(httpserver: HTTPServer) -> None:
    # Not the no-model case (that is a 500): a loaded model that ended its answer at once.
    httpserver.expect_request("/v1/completions").respond_with_json(_completion("", completion_tokens=0))
    with pytest.raises(EmptyCompletionError):
        WebUIBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="Hi", max_tokens=4))


def test_webui_unauthorized_names_the_key_setting_and_hides_the_key(httpserver: HTTPServer) -> None:
    secret = "sk-webui-secret-1234"

    def handler(request: Request) -> Response:
        if request.headers.get("Authorization") != "Bearer right-key":
            return Response(json.dumps({"detail": "Unauthorized"}), status=401, content_type="application/json")
        return Response(json.dumps(_completion("ok")), content_type="application/json")

    httpserver.expect_request("/v1/completions").respond_with_handler(handler)
    with pytest.raises(BackendHTTPError) as caught:
        WebUIBackend(httpserver.url_for("/"), api_key=secret).complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert caught.value.status == 401
    assert "MEMGPT_API_KEY" in str(caught.value)
    assert secret not in str(caught.value) and secret not in repr(caught.value.__dict__)
    keyed = WebUIBackend(httpserver.url_for("/"), api_key="right-key")
    done = keyed.complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert done.text == "ok"


def test_webui_openai_error_body_is_shown(httpserver: HTTPServer) -> None:
    # The shape of text-generation-webui's OpenAIError handler.
    error = {"error": {"message": "Missing required input", "type": "invalid_request_error", "param": "prompt"}}
    httpserver.expect_request("/v1/completions").respond_with_json(error, status=400)
    with pytest.raises(BackendHTTPError) as caught:
        WebUIBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert "Missing required input" in str(caught.value) and caught.value.status == 400


@pytest.mark.parametrize("backend_class", [WebUIBackend, WebUILegacyBackend])
def test_webui_refuses_a_json_schema_grammar(backend_class: type) -> None:
    with pytest.raises(ConfigError, match="GBNF") as caught:
        backend_class().complete(
            CompletionRequest(prompt="x", max_tokens=2, grammar=Grammar(format="json_schema", text="{}"))
        )
    assert backend_class.default_endpoint in str(caught.value)


# -- webui-legacy ---------------------------------------------------------------------------------------------------


def test_legacy_sends_the_old_fields_and_reads_results(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/token-count", method="POST", json={"prompt": "Is it?"}).respond_with_json(
        {"results": [{"tokens": 3}]}
    )
    httpserver.expect_request("/api/v1/generate", method="POST").respond_with_json({"results": [{"text": " yes"}]})
    httpserver.expect_request("/api/v1/token-count", method="POST", json={"prompt": " yes"}).respond_with_json(
        {"results": [{"tokens": 1}]}
    )
    backend = WebUILegacyBackend(httpserver.url_for("/api/v1/generate"))  # the pasted API path is cut off
    assert backend.endpoint == httpserver.url_for("/").rstrip("/")
    done = backend.complete(
        CompletionRequest(
            prompt="Is it?",
            max_tokens=8,
            stop=["</s>"],
            grammar=Grammar(format="gbnf", text=GBNF),
            context_window=2048,
        )
    )
    assert done.text == " yes" and done.finish_reason == "stop"
    assert done.prompt_tokens == 3 and done.completion_tokens == 1
    (sent,) = _bodies(httpserver, "/api/v1/generate")
    assert sent == {
        "prompt": "Is it?",
        "max_new_tokens": 8,
        "stopping_strings": ["</s>"],
        "truncation_length": 2048,
        "grammar_string": GBNF,
    }


def test_legacy_full_budget_is_reported_as_length(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/generate").respond_with_json({"results": [{"text": " one two three"}]})
    httpserver.expect_request("/api/v1/token-count").respond_with_json({"results": [{"tokens": 3}]})
    done = WebUILegacyBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="Count:", max_tokens=3))
    assert done.finish_reason == "length"


def test_legacy_model_name(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/model", method="GET").respond_with_json({"result": "airoboros-l2-70b"})
    assert WebUILegacyBackend(httpserver.url_for("/")).model_name() == "airoboros-l2-70b"


def test_legacy_on_a_new_install_says_to_use_webui(httpserver: HTTPServer) -> None:
    # The old API's http.server answers unknown paths with its HTML error page.
    httpserver.expect_request("/api/v1/generate").respond_with_data(
        "<html><body><h1>Error response</h1><p>Error code: 404</p></body></html>", status=404, content_type="text/html"
    )
    with pytest.raises(BackendHTTPError) as caught:
        WebUILegacyBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert caught.value.status == 404 and "BACKEND_TYPE" in str(caught.value)


# -- the wrong URLs MemGPT users pasted -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pasted",
    [
        "http://127.0.0.1:5000/v1",
        "http://127.0.0.1:5000/v1/",
        "http://127.0.0.1:5000/v1/v1",
        "http://127.0.0.1:5000/api/v1/generate",
        "http://127.0.0.1:5000/v1/api/v1/generate",
        "http://127.0.0.1:5000/v1/completions",
        "127.0.0.1:5000",
    ],
)
@pytest.mark.parametrize("backend_class", [WebUIBackend, WebUILegacyBackend])
def test_pasted_api_paths_are_normalised(backend_class: type, pasted: str) -> None:
    assert backend_class(pasted).endpoint == "http://127.0.0.1:5000"


def test_https_to_a_local_port_is_refused_with_the_http_url() -> None:
    with pytest.raises(ConfigError) as caught:
        WebUIBackend("https://localhost:5000/v1")
    assert "http://localhost:5000" in str(caught.value)
