"""The vllm backend, and the openai backend on a vLLM server, against a fake that answers as vLLM's API code does
(see fake_vllm.py for the facts it follows): the request, structured outputs per version, /tokenize,
max_model_len, the model choice and vLLM's errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fake_vllm import FREE_TEXT, FakeVLLM
from memgpt_backend_openai import OpenAIBackend, VLLMBackend
from memgpt_backend_openai.backend import MODEL_ENV, VLLM

from memgpt_core.errors import BackendHTTPError, ConfigError, ContextOverflowError
from memgpt_core.models import CompletionRequest, Grammar
from memgpt_core.testing import BackendConformance

YES_NO = Grammar(format="json_schema", text=json.dumps({"type": "string", "enum": ["yes", "no"]}))
MODEL = "Qwen/Qwen2.5-7B-Instruct"


class TestVLLMConformance(BackendConformance):
    """The live checks run against the fake vLLM: vLLM itself cannot run here, and llama-server is not vLLM."""

    backend_class = VLLMBackend

    @pytest.fixture
    def endpoint(self, vllm: FakeVLLM) -> str:
        return vllm.url


def test_declared_dialect_and_default_port() -> None:
    assert VLLMBackend().endpoint == "http://127.0.0.1:8000"
    caps = VLLMBackend.capabilities
    assert caps.grammar_formats == {"json_schema"} and caps.exact_tokenizer and caps.server_context


def test_the_request_vllm_receives(vllm: FakeVLLM) -> None:
    backend = VLLMBackend(vllm.url + "/v1")
    done = backend.complete(
        CompletionRequest(
            prompt="Once upon a time", max_tokens=64, stop=["\nUSER:"], sampling={"temperature": 0.7, "top_k": 40}
        )
    )
    assert done.text == " ".join(FREE_TEXT.split()[:5]) and done.finish_reason == "stop"
    assert done.prompt_tokens == vllm.count("Once upon a time") and done.completion_tokens == 5
    assert done.model == MODEL
    (sent,) = vllm.sent("/v1/completions")
    assert sent == {
        "prompt": "Once upon a time",
        "max_tokens": 64,
        "stop": ["\nUSER:"],
        "stream": False,
        "model": MODEL,
        "temperature": 0.7,
        "top_k": 40,
    }


def test_context_and_token_counts_come_from_vllm(vllm: FakeVLLM) -> None:
    vllm.max_model_len = 32768
    backend = VLLMBackend(vllm.url)
    assert backend.context_window() == 32768
    assert backend.count_tokens("one two three") == 4  # three words and the BOS token, as vLLM counts
    assert vllm.sent("/tokenize") == [{"prompt": "one two three", "model": MODEL}]
    assert backend.model_name() == MODEL


@pytest.mark.parametrize(
    ("version", "field"),
    [
        ("0.6.6", "guided_json"),
        ("0.10.1", "guided_json"),
        ("0.10.2", "structured_outputs"),
        ("0.11.0", "structured_outputs"),
        ("0.12.0", "structured_outputs"),
        ("0.13.1", "structured_outputs"),
    ],
)
def test_the_json_schema_goes_where_the_version_reads_it(vllm: FakeVLLM, version: str, field: str) -> None:
    vllm.version = version
    done = VLLMBackend(vllm.url).complete(CompletionRequest(prompt="Is the sky green?", max_tokens=8, grammar=YES_NO))
    assert json.loads(done.text) == "yes", f"vLLM {version} did not apply the schema: {done.text!r}"
    (sent,) = vllm.sent("/v1/completions")
    schema = json.loads(YES_NO.text)
    assert (sent.get("structured_outputs") == {"json": schema}) == (field == "structured_outputs")
    assert (sent.get("guided_json") == schema) == (field == "guided_json")


def test_a_server_without_version_gets_the_current_field(vllm: FakeVLLM) -> None:
    vllm.version, vllm.hide_version = "0.12.0", True
    backend = VLLMBackend(vllm.url)
    assert backend.vllm_version() is None
    backend.complete(CompletionRequest(prompt="Is it?", max_tokens=8, grammar=YES_NO))
    assert "structured_outputs" in vllm.sent("/v1/completions")[0]


def test_ban_eos_becomes_ignore_eos(vllm: FakeVLLM) -> None:
    done = VLLMBackend(vllm.url).complete(CompletionRequest(prompt="Go on", max_tokens=12, ban_eos=True))
    assert done.completion_tokens == 12 and done.finish_reason == "length"
    assert vllm.sent("/v1/completions")[0]["ignore_eos"] is True


def test_the_openai_backend_recognises_vllm(vllm: FakeVLLM) -> None:
    vllm.version = "0.8.5"
    backend = OpenAIBackend(vllm.url)
    backend.wait_until_ready(timeout=5)
    assert backend.dialect() == VLLM and backend.capabilities == VLLMBackend.capabilities
    assert backend.context_window() == 4096 and backend.count_tokens("a b") == 3
    done = backend.complete(CompletionRequest(prompt="Is the sky green?", max_tokens=8, grammar=YES_NO))
    assert json.loads(done.text) == "yes" and "guided_json" in vllm.sent("/v1/completions")[0]


def test_lora_adapters_do_not_count_as_other_models(vllm: FakeVLLM) -> None:
    vllm.adapters = ["sql-lora"]
    assert VLLMBackend(vllm.url).served_model() == MODEL


def test_one_model_under_several_names_needs_no_choice(vllm: FakeVLLM) -> None:
    vllm.models = ["qwen", "Qwen/Qwen2.5-7B-Instruct"]  # vllm serve ... --served-model-name qwen Qwen/Qwen2.5-7B...
    assert VLLMBackend(vllm.url).served_model() == "qwen"


def test_an_adapter_can_be_named(vllm: FakeVLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    vllm.adapters = ["sql-lora"]
    monkeypatch.setenv(MODEL_ENV, "sql-lora")
    VLLMBackend(vllm.url).complete(CompletionRequest(prompt="SELECT", max_tokens=4))
    assert vllm.sent("/v1/completions")[0]["model"] == "sql-lora"


def test_a_model_vllm_does_not_serve(vllm: FakeVLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ENV, "meta-llama/Llama-3.1-8B-Instruct")
    backend = VLLMBackend(vllm.url)
    backend.served()  # as wait_until_ready would have done
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=4))
    err = caught.value
    assert err.status == 404 and "The model `meta-llama/Llama-3.1-8B-Instruct` does not exist." in str(err)
    assert err.fix is not None and MODEL_ENV in err.fix and MODEL in err.fix


@pytest.mark.parametrize(("version", "window", "prompt_words"), [("0.10.0", 64, 80), ("0.11.0", 64, 80)])
def test_a_prompt_too_long_is_the_agents_overflow(vllm: FakeVLLM, version: str, window: int, prompt_words: int) -> None:
    vllm.version, vllm.max_model_len = version, window
    prompt = "word " * prompt_words
    with pytest.raises(ContextOverflowError) as caught:
        VLLMBackend(vllm.url).complete(CompletionRequest(prompt=prompt, max_tokens=16))
    err = caught.value
    assert err.context_window == window and err.prompt_tokens == vllm.count(prompt)
    assert "maximum context length is 64 tokens" in str(err) and "--max-model-len" in str(err.fix)


def test_the_answer_does_not_fit_beside_the_prompt(vllm: FakeVLLM) -> None:
    # The prompt alone fits, with max_tokens it does not: vLLM refuses before generating (no cut-off answer).
    vllm.max_model_len = 64
    with pytest.raises(ContextOverflowError) as caught:
        VLLMBackend(vllm.url).complete(CompletionRequest(prompt="word " * 50, max_tokens=32))
    assert caught.value.prompt_tokens == 51 and caught.value.context_window == 64


def test_the_old_flat_error_shape_is_read(vllm: FakeVLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    vllm.version = "0.9.2"
    monkeypatch.setenv(MODEL_ENV, "nope")
    with pytest.raises(BackendHTTPError) as caught:
        VLLMBackend(vllm.url).complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert "The model `nope` does not exist." in str(caught.value) and '"object"' not in str(caught.value)


def test_api_key(vllm: FakeVLLM) -> None:
    key = "sk-vllm-test-2c81f0"
    vllm.api_key = key
    with pytest.raises(BackendHTTPError) as caught:
        VLLMBackend(vllm.url).complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert caught.value.status == 401 and "Unauthorized" in str(caught.value)
    assert "MEMGPT_API_KEY" in str(caught.value.fix)
    wrong = "sk-wrong-99"
    with pytest.raises(BackendHTTPError) as refused:
        VLLMBackend(vllm.url, api_key=wrong).complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert wrong not in " ".join(str(part) for part in (refused.value, repr(refused.value), vars(refused.value)))
    assert "was refused" in str(refused.value.fix)
    assert VLLMBackend(vllm.url, api_key=key).complete(CompletionRequest(prompt="Hi", max_tokens=4)).text


def test_grammar_formats_vllm_does_not_take_are_refused_before_sending(vllm: FakeVLLM) -> None:
    with pytest.raises(ConfigError, match="JSON-schema") as caught:
        VLLMBackend(vllm.url).complete(
            CompletionRequest(prompt="x", max_tokens=2, grammar=Grammar(format="gbnf", text='root ::= "a"'))
        )
    assert vllm.url in str(caught.value)
    assert not vllm.sent("/v1/completions")


def test_several_models_need_one_named(vllm: FakeVLLM) -> None:
    vllm.models = ["Qwen/Qwen2.5-7B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3"]

    def both_served(request: Any) -> Any:  # two engines behind one router, each model with its own root
        from werkzeug import Response

        data = {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "owned_by": "vllm", "root": name, "parent": None, "max_model_len": 8192}
                for name in vllm.models
            ],
        }
        return Response(json.dumps(data), content_type="application/json")

    vllm.httpserver.clear()
    vllm.httpserver.expect_request("/v1/models").respond_with_handler(both_served)
    with pytest.raises(ConfigError) as caught:
        VLLMBackend(vllm.url).wait_until_ready(timeout=5)
    assert "2 models" in str(caught.value) and "mistralai/Mistral-7B-Instruct-v0.3" in str(caught.value)
    assert MODEL_ENV in str(caught.value.fix)
