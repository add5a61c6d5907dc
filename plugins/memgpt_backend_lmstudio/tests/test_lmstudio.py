"""The lmstudio backend: raw completions and JSON-schema structured output against the real llama-server (both speak
OpenAI's shape), and LM Studio's own answers (errors, the loaded context) against fakes shaped as LM Studio's
documentation and its users' reports show them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from memgpt_backend_lmstudio import LMStudioBackend, LMStudioLegacyBackend
from pytest_httpserver import HTTPServer

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

CALL_SCHEMA = {
    "type": "object",
    "properties": {
        "function": {"type": "string", "enum": ["send_message"]},
        "params": {
            "type": "object",
            "properties": {"message": {"type": "string", "maxLength": 40}},
            "required": ["message"],
        },
    },
    "required": ["function", "params"],
}


class TestLMStudioConformance(BackendConformance):
    backend_class = LMStudioBackend

    @pytest.fixture
    def endpoint(self, llama_server: Any) -> str:
        return llama_server.url

    def test_live_token_count_and_context(self, live_backend: Any) -> None:
        pytest.skip(
            "llama-server has no LM Studio /api/v1/models; the loaded context is checked against the fake below"
        )


class TestLMStudioLegacyConformance(BackendConformance):
    """lmstudio-legacy speaks /v1/chat/completions, which llama-server serves too."""

    backend_class = LMStudioLegacyBackend

    @pytest.fixture
    def endpoint(self, llama_server: Any) -> str:
        return llama_server.url

    def test_live_token_count_and_context(self, live_backend: Any) -> None:
        pytest.skip(
            "llama-server has no LM Studio /api/v1/models; the loaded context is checked against the fake below"
        )


# -- the real llama-server --------------------------------------------------------------------------------------------


def test_raw_completion_sends_the_prompt_untouched(llama_server: Any) -> None:
    backend = LMStudioBackend(llama_server.url + "/v1/completions")
    done = backend.complete(
        CompletionRequest(prompt="The capital of France is", max_tokens=6, stop=["."], sampling={"temperature": 0})
    )
    assert done.text.strip() and "." not in done.text
    # The prompt went in raw: llama-server counts the same 5 or so tokens a template-free prompt has.
    assert done.prompt_tokens is not None and done.prompt_tokens < 12


def test_json_schema_structured_output_on_llama_server(llama_server: Any) -> None:
    backend = LMStudioBackend(llama_server.url)
    done = backend.complete(
        CompletionRequest(
            prompt="Greet the user named Ann.",
            max_tokens=48,
            grammar=Grammar(format="json_schema", text=json.dumps(CALL_SCHEMA)),
            sampling={"temperature": 0, "seed": 3},
        )
    )
    call = json.loads(done.text)
    assert call["function"] == "send_message"
    assert isinstance(call["params"]["message"], str)


def test_legacy_sends_the_prompt_as_one_user_message_on_llama_server(llama_server: Any) -> None:
    backend = LMStudioLegacyBackend(llama_server.url + "/v1")
    done = backend.complete(
        CompletionRequest(prompt="Name one colour.", max_tokens=8, sampling={"temperature": 0, "seed": 1})
    )
    assert done.text.strip()
    # The chat template went around the prompt: more tokens than the five or so of the bare text.
    assert done.prompt_tokens is not None and done.prompt_tokens > 8


def test_legacy_json_schema_structured_output_on_llama_server(llama_server: Any) -> None:
    done = LMStudioLegacyBackend(llama_server.url).complete(
        CompletionRequest(
            prompt="Greet the user named Ann.",
            max_tokens=48,
            grammar=Grammar(format="json_schema", text=json.dumps(CALL_SCHEMA)),
            sampling={"temperature": 0, "seed": 3},
        )
    )
    assert json.loads(done.text)["function"] == "send_message"


# -- fakes: LM Studio's own answers ---------------------------------------------------------------------------------


def _sent(httpserver: HTTPServer, path: str) -> list[dict]:
    return [json.loads(req.data) for req, _ in httpserver.log if req.path == path]


CALL_TEXT = '{"function": "send_message", "params": {"message": "hi"}}'


def test_structured_request_body(httpserver: HTTPServer) -> None:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "lmstudio-community/dolphin-2.2.1-mistral-7b",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": '{"function": "send_message", "params": {"message": "hi"}}',
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 14, "total_tokens": 44},
    }
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(answer)
    done = LMStudioBackend(httpserver.url_for("/")).complete(
        CompletionRequest(
            prompt="PROMPT",
            max_tokens=64,
            stop=["</s>"],
            grammar=Grammar(format="json_schema", text=json.dumps(CALL_SCHEMA)),
        )
    )
    assert json.loads(done.text)["params"] == {"message": "hi"}
    assert done.prompt_tokens == 30 and done.completion_tokens == 14
    (sent,) = _sent(httpserver, "/v1/chat/completions")
    assert sent == {
        "messages": [{"role": "user", "content": "PROMPT"}],
        "max_tokens": 64,
        "stop": ["</s>"],
        "stream": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "function_call", "strict": True, "schema": CALL_SCHEMA},
        },
    }


@pytest.mark.parametrize(
    ("status", "body", "prompt_tokens", "window"),
    [
        # MemGPT's recorded example
        (400, {"error": "Context length exceeded. Tokens in context: 8000, Context length: 8000"}, 8000, 8000),
        # the llama.cpp engine's text, answered as a 400
        (
            400,
            {
                "error": "Trying to keep the first 10136 tokens when context the overflows. However, the model is "
                "loaded with context length of only 7866 tokens, which is not enough. Try to load the model with a "
                "larger context length, or provide a shorter input"
            },
            10136,
            7866,
        ),
        # the MLX engine, reported with status 200
        (200, {"error": {"message": "Context size has been exceeded."}}, None, None),
    ],
)
def test_context_overflow_becomes_the_agents_overflow(
    httpserver: HTTPServer, status: int, body: dict, prompt_tokens: int | None, window: int | None
) -> None:
    httpserver.expect_request("/v1/completions").respond_with_json(body, status=status)
    with pytest.raises(ContextOverflowError) as caught:
        LMStudioBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=4))
    assert caught.value.prompt_tokens == prompt_tokens and caught.value.context_window == window
    assert "context length" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        {
            "error": {
                "message": "No models loaded. Please load a model in the developer page or use the `lms load` command.",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
        },
        {"error": "No models loaded. Please load a model."},
    ],
)
def test_no_model_loaded_says_how_to_load_one(httpserver: HTTPServer, body: dict) -> None:
    httpserver.expect_request("/v1/completions").respond_with_json(body, status=400)
    with pytest.raises(BackendError) as caught:
        LMStudioBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=4))
    assert not isinstance(caught.value, ContextOverflowError)
    assert "no model loaded" in str(caught.value) and "lms load" in str(caught.value)


def test_other_errors_keep_lm_studios_sentence(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/completions").respond_with_json(
        {"error": {"message": "Model crashed while generating", "type": "server_error"}}, status=500
    )
    with pytest.raises(BackendHTTPError) as caught:
        LMStudioBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=4))
    assert caught.value.status == 500 and "Model crashed while generating" in str(caught.value)
    assert str(caught.value).startswith("LM Studio at ") and caught.value.fix


def test_empty_answer_points_at_the_loaded_context(httpserver: HTTPServer) -> None:
    # LM Studio's llama.cpp engine answers 200 with no text when the prompt does not fit.
    empty = {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}], "usage": {"prompt_tokens": 9000}}
    httpserver.expect_request("/v1/completions").respond_with_json(empty)
    with pytest.raises(EmptyCompletionError, match="context length"):
        LMStudioBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=4))


def test_answer_without_a_completion_points_at_lm_studios_port(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/completions").respond_with_json({"object": "list", "data": []})
    with pytest.raises(BackendResponseError) as caught:
        LMStudioBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=4))
    assert caught.value.url == httpserver.url_for("/v1/completions") and "LM Studio" in str(caught.value)
    assert caught.value.fix is not None and "127.0.0.1:1234" in caught.value.fix


def test_loaded_context_and_model_from_the_rest_api(httpserver: HTTPServer) -> None:
    # GET /api/v1/models as LM Studio 0.4 documents it.
    models = {
        "models": [
            {"type": "llm", "key": "deepseek-r1", "loaded_instances": [], "max_context_length": 131072},
            {
                "type": "llm",
                "key": "mistral-7b",
                "loaded_instances": [{"id": "mistral-7b", "config": {"context_length": 8192, "parallel": 4}}],
                "max_context_length": 32768,
            },
        ]
    }
    httpserver.expect_request("/api/v1/models", method="GET").respond_with_json(models)
    backend = LMStudioBackend(httpserver.url_for("/"))
    assert backend.context_window() == 8192
    assert backend.model_name() == "mistral-7b"


def test_older_lm_studio_without_the_rest_api(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/models").respond_with_json({"error": "Unexpected endpoint"}, status=404)
    httpserver.expect_request("/v1/models").respond_with_json({"object": "list", "data": [{"id": "llama-3-8b"}]})
    backend = LMStudioBackend(httpserver.url_for("/"))
    assert backend.context_window() is None
    assert backend.model_name() == "llama-3-8b"


def test_legacy_request_body_without_a_grammar(httpserver: HTTPServer) -> None:
    answer = {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "model": "lmstudio-community/dolphin-2.2.1-mistral-7b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CALL_TEXT}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 16, "total_tokens": 46},
    }
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(answer)
    done = LMStudioLegacyBackend(httpserver.url_for("/")).complete(
        CompletionRequest(prompt="PROMPT", max_tokens=16, stop=["\nUSER:"], sampling={"temperature": 0.3})
    )
    assert done.text == CALL_TEXT and done.finish_reason == "length"
    (sent,) = _sent(httpserver, "/v1/chat/completions")
    assert sent == {
        "messages": [{"role": "user", "content": "PROMPT"}],
        "max_tokens": 16,
        "stop": ["\nUSER:"],
        "stream": False,
        "temperature": 0.3,
    }
    assert not _sent(httpserver, "/v1/completions")


def test_legacy_reads_lm_studios_errors_as_lmstudio_does(httpserver: HTTPServer) -> None:
    body = {"error": "Context length exceeded. Tokens in context: 8000, Context length: 8000"}
    httpserver.expect_request("/v1/chat/completions").respond_with_json(body, status=400)
    with pytest.raises(ContextOverflowError) as caught:
        LMStudioLegacyBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=4))
    assert caught.value.context_window == 8000


def test_legacy_defaults_to_lm_studios_port() -> None:
    assert LMStudioLegacyBackend().endpoint == "http://127.0.0.1:1234"


def test_refuses_a_gbnf_grammar() -> None:
    with pytest.raises(ConfigError, match="JSON-schema") as caught:
        LMStudioBackend().complete(CompletionRequest(prompt="x", max_tokens=2, grammar=Grammar(format="gbnf", text="")))
    assert LMStudioBackend.default_endpoint in str(caught.value)


@pytest.mark.parametrize(
    "pasted", ["http://localhost:1234/v1", "http://localhost:1234/v1/", "localhost:1234", "http://localhost:1234/v1/v1"]
)
def test_pasted_urls_are_normalised(pasted: str) -> None:
    assert LMStudioBackend(pasted).endpoint == "http://localhost:1234"


def test_https_to_a_local_port_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"http://127\.0\.0\.1:1234"):
        LMStudioBackend("https://127.0.0.1:1234/v1")
