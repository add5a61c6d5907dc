"""The openai backend against the real llama-server's OpenAI-compatible API: the dialect it finds, the grammars,
token counts and context it then offers, and what it sends."""

from __future__ import annotations

import json
from typing import Any

import pytest
from memgpt_backend_openai import OpenAIBackend
from memgpt_backend_openai.backend import GENERIC, LLAMA_CPP, MODEL_ENV
from pytest_httpserver import HTTPServer

from memgpt_core.backend import Capabilities
from memgpt_core.errors import ConfigError
from memgpt_core.models import CompletionRequest, Grammar
from memgpt_core.testing import BackendConformance


class TestOpenAIConformance(BackendConformance):
    backend_class = OpenAIBackend

    @pytest.fixture
    def endpoint(self, llama_server: Any) -> str:
        return llama_server.url


@pytest.fixture
def backend(llama_server: Any) -> OpenAIBackend:
    made = OpenAIBackend(llama_server.url + "/v1", timeout=120)  # the /v1 OpenAI clients are given is removed
    made.wait_until_ready(timeout=60)
    return made


def test_the_class_declares_only_what_every_server_has() -> None:
    # /v1/embeddings and "stream": true are part of the API
    assert OpenAIBackend.capabilities == Capabilities(embeddings=True, streaming=True)
    assert OpenAIBackend().endpoint == "http://127.0.0.1:8080"


def test_llama_server_is_recognised_and_its_capabilities_stated(backend: OpenAIBackend, llama_server: Any) -> None:
    assert backend.endpoint == llama_server.url
    assert backend.dialect() == LLAMA_CPP
    assert backend.capabilities.grammar_formats == {"gbnf", "json_schema"}
    assert backend.capabilities.exact_tokenizer and backend.capabilities.server_context
    assert OpenAIBackend.capabilities == Capabilities(embeddings=True, streaming=True), (
        "the instance's truth must not leak"
    )
    assert backend.context_window() == llama_server.n_ctx
    served = backend.served()
    assert served is not None and len(served) == 1
    assert backend.model_name() == served[0].id == llama_server.props["model_path"]


def test_token_counts_are_the_servers_own(backend: OpenAIBackend) -> None:
    prompt = "The capital of France is Paris, and the capital of Spain is"
    counted = backend.count_tokens(prompt)
    done = backend.complete(CompletionRequest(prompt=prompt, max_tokens=1))
    assert counted == done.prompt_tokens, "the count must be what the server charges for the same prompt"


def test_completion_reads_text_usage_timings_and_stop(backend: OpenAIBackend) -> None:
    request = CompletionRequest(
        prompt="The capital of France is", max_tokens=6, stop=["."], sampling={"temperature": 0, "seed": 1}
    )
    done = backend.complete(request)
    assert done.text.strip() and "." not in done.text, "the stop string was not honoured"
    assert done.completion_tokens is not None and 0 < done.completion_tokens <= 6
    assert done.timings is not None and done.timings.predicted_n == done.completion_tokens
    assert backend.complete(request).text == done.text, "temperature 0 with a seed must repeat itself"


@pytest.mark.parametrize(
    "grammar",
    [
        Grammar(format="json_schema", text=json.dumps({"type": "string", "enum": ["zq17", "xv42"]})),
        Grammar(format="gbnf", text='root ::= "zq17" | "xv42"'),
    ],
    ids=["json_schema", "gbnf"],
)
def test_both_grammar_formats_constrain_the_output(backend: OpenAIBackend, grammar: Grammar) -> None:
    done = backend.complete(CompletionRequest(prompt="Say hello to the user:", max_tokens=12, grammar=grammar))
    text = json.loads(done.text) if grammar.format == "json_schema" else done.text.strip()
    assert text in ("zq17", "xv42"), f"the {grammar.format} grammar was not applied: {done.text!r}"


def test_ban_eos_keeps_generating_to_the_cap(backend: OpenAIBackend) -> None:
    # A one-word answer the model would normally end at once: with ban_eos it runs to max_tokens.
    done = backend.complete(
        CompletionRequest(
            prompt="<|im_start|>user\nSay yes.<|im_end|>\n<|im_start|>assistant\n", max_tokens=24, ban_eos=True
        )
    )
    assert done.completion_tokens == 24 and done.finish_reason == "length"


def test_a_named_model_is_sent(llama_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # llama-server serves one model whatever the name; what matters is that the name the user gave is the one sent.
    monkeypatch.setenv(MODEL_ENV, "my-alias")
    named = OpenAIBackend(llama_server.url)
    assert named.model == "my-alias" and named.served_model() == "my-alias" and named.model_name() == "my-alias"
    assert named.complete(CompletionRequest(prompt="Hi", max_tokens=2)).text


# -- a server of no dialect memgpt knows: Ollama's /v1, as a fake ------------------------------------------------------


class FakeOllamaV1:
    """Ollama's OpenAI compatibility layer (``openai/openai.go``): ``GET /v1/models`` lists the pulled models as
    ``{"id", "object": "model", "created", "owned_by": <namespace, "library">}``; ``POST /v1/completions`` needs a
    pulled ``model``, ignores fields it does not know (Go's JSON decoding), and answers ``{"id", "object":
    "text_completion", "created", "model", "system_fingerprint": "fp_ollama", "choices": [{"text", "index",
    "finish_reason"}], "usage"}``; errors are ``{"error": {"message", "type", "param": null, "code": null}}``, a model
    that is not pulled 404 "model 'NAME' not found". Any other path is gin's plain-text "404 page not found"."""

    def __init__(self, httpserver: HTTPServer, models: list[str]) -> None:
        self.models = models
        self.bodies: list[dict[str, Any]] = []
        httpserver.expect_request("/v1/models").respond_with_json(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": 1730000000, "owned_by": "library"} for m in models],
            }
        )
        httpserver.expect_request("/v1/completions", method="POST").respond_with_handler(self._complete)
        for other in ("/props", "/version", "/tokenize"):  # routes of other servers memgpt may ask about
            httpserver.expect_request(other).respond_with_data(
                "404 page not found", status=404, content_type="text/plain"
            )
        self.url = httpserver.url_for("/").rstrip("/")

    def _complete(self, request: Any) -> Any:
        from werkzeug import Response

        body = json.loads(request.data)
        self.bodies.append(body)
        if body.get("model") not in self.models:
            error = {"message": f"model '{body.get('model')}' not found", "type": "not_found_error"}
            return Response(json.dumps({"error": {**error, "param": None, "code": None}}), status=404)
        answer = {
            "id": "cmpl-417",
            "object": "text_completion",
            "created": 1730000001,
            "model": body["model"],
            "system_fingerprint": "fp_ollama",
            "choices": [{"text": " Paris", "index": 0, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 6, "completion_tokens": 1, "total_tokens": 7},
        }
        return Response(json.dumps(answer), content_type="application/json")


def test_an_unknown_dialect_offers_no_grammar_and_no_exact_counts(httpserver: HTTPServer) -> None:
    ollama = FakeOllamaV1(httpserver, ["llama3.2:latest"])
    backend = OpenAIBackend(ollama.url + "/v1")
    backend.wait_until_ready(timeout=5)
    assert backend.dialect() == GENERIC
    assert backend.capabilities == Capabilities(embeddings=True, streaming=True), "an unknown kind: only the API itself"
    assert backend.count_tokens("hello there") is None and backend.context_window() is None
    done = backend.complete(CompletionRequest(prompt="The capital of France is", max_tokens=3, ban_eos=True))
    assert done.text == " Paris" and done.prompt_tokens == 6
    (sent,) = ollama.bodies
    assert sent == {"prompt": "The capital of France is", "max_tokens": 3, "stream": False, "model": "llama3.2:latest"}
    with pytest.raises(ConfigError, match="takes no grammars") as caught:
        backend.complete(CompletionRequest(prompt="x", max_tokens=2, grammar=Grammar(format="gbnf", text="root ::= x")))
    assert "without -grammar" in str(caught.value.fix)


def test_several_models_and_none_named_says_which_to_name(httpserver: HTTPServer) -> None:
    ollama = FakeOllamaV1(httpserver, ["llama3.2:latest", "qwen2.5:7b"])
    with pytest.raises(ConfigError) as caught:
        OpenAIBackend(ollama.url).wait_until_ready(timeout=5)
    assert "llama3.2:latest, qwen2.5:7b" in str(caught.value)
    assert caught.value.fix is not None and f"{MODEL_ENV}=llama3.2:latest" in caught.value.fix
    assert not ollama.bodies, "nothing may be generated before the model is known"


def test_the_named_model_is_used_among_several(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    ollama = FakeOllamaV1(httpserver, ["llama3.2:latest", "qwen2.5:7b"])
    monkeypatch.setenv(MODEL_ENV, "qwen2.5:7b")
    OpenAIBackend(ollama.url).complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert ollama.bodies[-1]["model"] == "qwen2.5:7b"


def test_a_model_the_server_does_not_have(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from memgpt_core.errors import BackendHTTPError

    ollama = FakeOllamaV1(httpserver, ["llama3.2:latest", "qwen2.5:7b"])
    monkeypatch.setenv(MODEL_ENV, "mistral")
    backend = OpenAIBackend(ollama.url)
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=2))
    assert caught.value.status == 404 and "model 'mistral' not found" in str(caught.value)
    assert caught.value.fix is not None and MODEL_ENV in caught.value.fix and "qwen2.5:7b" in caught.value.fix
