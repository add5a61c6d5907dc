"""Core's shared OpenAI-style pieces (memgpt_core.openai_style), which the webui, lmstudio, openai and vllm backends
all build their requests and read their answers with: the request body, error bodies, model lists."""

from __future__ import annotations

import json

import pytest

from memgpt_core.models import CompletionRequest
from memgpt_core.openai_style import OWN_FIELDS, ServerError, completion_body, read_error, read_models
from memgpt_core.testing import assert_light_import


def test_still_light_at_import() -> None:
    assert_light_import("memgpt_core.openai_style")


def test_completion_body_for_completions_and_chat() -> None:
    request = CompletionRequest(prompt="P", max_tokens=8, stop=["</s>"], sampling={"temperature": 0.2, "seed": 7})
    assert completion_body(request) == {
        "temperature": 0.2,
        "seed": 7,
        "prompt": "P",
        "max_tokens": 8,
        "stop": ["</s>"],
        "stream": False,
    }
    chat = completion_body(request, chat=True, model="m")
    assert chat["messages"] == [{"role": "user", "content": "P"}] and "prompt" not in chat
    assert chat["model"] == "m"


def test_sampling_settings_never_replace_the_requests_own_fields() -> None:
    sneaky = {name: "from sampling" for name in OWN_FIELDS} | {"top_k": 40}
    body = completion_body(CompletionRequest(prompt="P", max_tokens=3, sampling=sneaky), dialect="llama.cpp")
    assert body == {"top_k": 40, "prompt": "P", "max_tokens": 3, "stream": False}, "no stop list and no model"


def test_sampling_settings_go_under_the_dialects_names_and_only_where_the_server_has_them() -> None:
    request = CompletionRequest(prompt="P", max_tokens=3, sampling={"repeat_penalty": 1.1, "top_k": 40, "seed": 7})
    vllm = completion_body(request, dialect="vllm")
    assert (vllm["repetition_penalty"], vllm["top_k"], vllm["seed"]) == (1.1, 40, 7)
    assert "repeat_penalty" not in vllm
    plain = completion_body(request)  # a server of unknown kind gets OpenAI's own fields only
    assert plain["seed"] == 7 and "top_k" not in plain and "repeat_penalty" not in plain


@pytest.mark.parametrize(
    ("body", "message", "kind"),
    [
        # OpenAI, llama.cpp, vLLM 0.10.1 and later, text-generation-webui
        (
            {"error": {"code": 400, "message": "failed to parse grammar", "type": "invalid_request_error"}},
            "failed to parse grammar",
            "invalid_request_error",
        ),
        # LM Studio, vLLM's 401
        ({"error": "Unauthorized"}, "Unauthorized", ""),
        # vLLM before 0.10.1, SGLang
        (
            {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404},
            "The model `x` does not exist.",
            "NotFoundError",
        ),
        # FastAPI: an HTTPException, and a request that failed validation
        ({"detail": "Unauthorized"}, "Unauthorized", ""),
        ({"detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]}, "field required", ""),
    ],
)
def test_read_error_reads_every_shape(body: dict, message: str, kind: str) -> None:
    for given in (json.dumps(body), body):
        said = read_error(given)
        assert said.message == message and said.type == kind and said.is_json


def test_read_error_keeps_a_servers_own_numbers_and_answers_any_text() -> None:
    llama = {"error": {"code": 400, "message": "too long", "type": "exceed_context_size_error", "n_ctx": 256}}
    assert read_error(json.dumps(llama)).fields["n_ctx"] == 256
    html = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>"
    said = read_error(html)
    assert said == ServerError(message=" ".join(html.split())) and not said.is_json
    assert read_error(None).message == "" and read_error("x" * 400).message.endswith("…")
    assert read_error('{"unexpected": true}').message == '{"unexpected": true}'


def test_mentions_looks_at_message_type_param_and_code() -> None:
    said = read_error({"error": {"message": "nope", "type": "NotFoundError", "param": "model", "code": 404}})
    assert said.mentions("notfound") and said.mentions("MODEL") and said.mentions("404")
    assert not said.mentions("grammar")


def test_read_models_reads_vllm_and_llama_cpp_cards() -> None:
    answer = {
        "object": "list",
        "data": [
            {"id": "Qwen/Qwen2.5-7B-Instruct", "owned_by": "vllm", "max_model_len": 32768, "parent": None},
            {"id": "model.gguf", "owned_by": "llamacpp", "meta": {"n_ctx": 8192}},
            {"object": "model"},  # no id: skipped
            "junk",
        ],
    }
    first, second = read_models(answer) or []
    assert (first.id, first.owned_by, first.max_model_len) == ("Qwen/Qwen2.5-7B-Instruct", "vllm", 32768)
    assert second.max_model_len is None and second.card["meta"] == {"n_ctx": 8192}
    assert read_models({"object": "list", "data": []}) == []
    assert read_models({"models": []}) is None and read_models(None) is None and read_models("text") is None
