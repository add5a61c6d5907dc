"""The ollama backend against a fake that answers as Ollama's API documentation says (fake_ollama.py): the request
it sends, the answer it reads, the model it needs, the context and the chat template it finds."""

from __future__ import annotations

import json

import pytest
from fake_ollama import CALL, MISTRAL_JINJA, STORY, FakeModel, FakeOllama
from memgpt_backend_ollama import MODEL_ENV, OllamaBackend
from memgpt_backend_ollama.backend import KEEP_ALIVE, is_jinja

from memgpt_core.errors import ConfigError, ContextOverflowError
from memgpt_core.models import CompletionRequest, Grammar
from memgpt_core.testing import SAMPLE_FUNCTIONS, BackendConformance

SCHEMA = {
    "type": "object",
    "properties": {"function": {"const": "send_message"}, "params": {"type": "object"}},
    "required": ["function", "params"],
}


class TestOllamaConformance(BackendConformance):
    backend_class = OllamaBackend

    @pytest.fixture
    def endpoint(self, ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.setenv(MODEL_ENV, "llama3.2")
        return ollama.url


def generated(fake: FakeOllama) -> list[dict]:
    """The /api/generate bodies that carried a prompt (not the empty-prompt load)."""
    return [body for body in fake.sent("/api/generate") if body.get("prompt")]


def test_generate_sends_a_raw_prompt_with_the_schema_and_options(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.2")
    done = backend.complete(
        CompletionRequest(
            prompt="### Instruction:\nGreet the user.\n### Response:\n",
            max_tokens=64,
            stop=["\nUSER:", "</s>"],
            grammar=Grammar(format="json_schema", text=json.dumps(SCHEMA)),
            context_window=4096,
            sampling={"temperature": 0.3, "seed": 7, "repetition_penalty": 1.1, "top_k": 40},
        )
    )
    assert done.text == CALL and done.finish_reason == "stop"
    (sent,) = generated(ollama)
    assert sent == {
        "model": "llama3.2",
        "prompt": "### Instruction:\nGreet the user.\n### Response:\n",
        "raw": True,
        "stream": False,
        "think": False,
        "keep_alive": KEEP_ALIVE,
        "format": SCHEMA,
        "options": {
            "num_ctx": 4096,
            "num_predict": 64,
            "stop": ["\nUSER:", "</s>"],
            "temperature": 0.3,
            "seed": 7,
            "repeat_penalty": 1.1,
            "top_k": 40,
        },
    }
    assert ollama.loaded == {"llama3.2:latest": 4096}, "the model ran with the context the request named"


def test_answer_counts_and_durations_are_read(ollama: FakeOllama) -> None:
    done = OllamaBackend(ollama.url, model="llama3.2").complete(
        CompletionRequest(prompt="Tell me a story.", max_tokens=200, context_window=2048)
    )
    (sent,) = generated(ollama)
    assert "format" not in sent and sent["raw"] is True and sent["options"]["num_predict"] == 200
    answer = json.loads(ollama.server.log[-1][1].get_data())
    assert done.text == STORY == answer["response"]
    assert done.prompt_tokens == answer["prompt_eval_count"] == 4
    assert done.completion_tokens == answer["eval_count"]
    assert done.timings is not None
    assert done.timings.prompt_n == answer["prompt_eval_count"]
    assert done.timings.predicted_n == answer["eval_count"]
    # Ollama reports nanoseconds; Timings holds milliseconds.
    assert done.timings.prompt_ms == pytest.approx(answer["prompt_eval_duration"] / 1e6)
    assert done.timings.predicted_ms == pytest.approx(answer["eval_duration"] / 1e6)
    assert done.model == "llama3.2"


def test_the_token_cap_is_reported_as_length(ollama: FakeOllama) -> None:
    done = OllamaBackend(ollama.url, model="llama3.2").complete(
        CompletionRequest(prompt="Tell me a story.", max_tokens=3, context_window=2048)
    )
    assert done.finish_reason == "length" and done.completion_tokens == 3
    assert generated(ollama)[0]["options"]["num_predict"] == 3


def test_ban_eos_is_ignored_for_ollama_has_no_such_option(ollama: FakeOllama) -> None:
    OllamaBackend(ollama.url, model="llama3.2").complete(
        CompletionRequest(prompt="Tell me a story.", max_tokens=8, context_window=2048, ban_eos=True)
    )
    (sent,) = generated(ollama)
    assert set(sent["options"]) == {"num_ctx", "num_predict"}


def test_sampling_never_overrides_what_the_request_sets(ollama: FakeOllama) -> None:
    OllamaBackend(ollama.url, model="llama3.2").complete(
        CompletionRequest(
            prompt="Tell me a story.",
            max_tokens=8,
            context_window=2048,
            sampling={"num_predict": 999, "num_ctx": 99999, "typical": 0.9},
        )
    )
    (sent,) = generated(ollama)
    assert sent["options"] == {"num_predict": 8, "num_ctx": 2048, "typical_p": 0.9}


# -- the model name ---------------------------------------------------------------------------------------------------


def test_the_model_name_comes_from_the_environment(ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ENV, " smollm2:135m ")
    backend = OllamaBackend(ollama.url)
    assert backend.model == backend.model_name() == "smollm2:135m"
    backend.complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert generated(ollama)[0]["model"] == "smollm2:135m"
    assert OllamaBackend(ollama.url, model="llama3.2").model == "llama3.2", "an explicit model wins"


def test_without_a_model_name_the_error_lists_the_servers_models(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url)
    with pytest.raises(ConfigError) as caught:
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=4))
    err = caught.value
    assert "needs a model name" in str(err) and ollama.url in str(err)
    assert "llama3.2:latest, smollm2:135m" in str(err)
    assert f"export {MODEL_ENV}=llama3.2:latest" in (err.fix or "")
    assert ollama.paths() == ["/api/tags"], "only the list of models was asked for"
    with pytest.raises(ConfigError, match="needs a model name"):
        backend.wait_until_ready()


def test_without_a_model_name_and_no_models_pulled(ollama: FakeOllama) -> None:
    ollama.models.clear()
    with pytest.raises(ConfigError) as caught:
        OllamaBackend(ollama.url).wait_until_ready()
    assert "has no models yet" in str(caught.value) and "ollama pull" in (caught.value.fix or "")


def test_an_unknown_model_is_named_with_the_servers_models(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.3")
    with pytest.raises(ConfigError) as caught:
        backend.wait_until_ready()
    err = caught.value
    assert "no model named 'llama3.3'" in str(err) and "did you mean llama3.2:latest?" in str(err)
    assert "llama3.2:latest, smollm2:135m" in str(err)
    assert "ollama pull llama3.3" in (err.fix or "") and MODEL_ENV in (err.fix or "")
    assert ollama.sent("/api/show") == [{"model": "llama3.3"}]
    assert not ollama.sent("/api/generate"), "nothing is loaded for a model the server does not have"


def test_a_model_removed_while_in_use_is_named_on_generate(ollama: FakeOllama) -> None:
    # Ollama answers 404 "model 'NAME' not found" to /api/generate too.
    backend = OllamaBackend(ollama.url, model="llama3.2")
    backend.show()
    del ollama.models["llama3.2:latest"]
    with pytest.raises(ConfigError, match=r"no model named 'llama3\.2'"):
        backend.complete(CompletionRequest(prompt="Hi", max_tokens=4, context_window=2048))
    assert generated(ollama)[0]["model"] == "llama3.2"


# -- readiness and the context ----------------------------------------------------------------------------------------


def test_wait_until_ready_loads_the_model_and_reads_the_context_it_runs_with(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.2")
    seen: list[str] = []
    backend.wait_until_ready(progress=seen.append)
    assert seen == [f"Ollama at {ollama.url} is loading llama3.2 into memory"]
    assert ollama.sent("/api/generate") == [{"model": "llama3.2", "keep_alive": KEEP_ALIVE}], "the documented load"
    # Loaded with OLLAMA_CONTEXT_LENGTH (8192 here): /api/ps says so, and the requests keep it (no reload).
    assert backend.context_window() == 8192
    backend.complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert generated(ollama)[0]["options"]["num_ctx"] == 8192 and ollama.loads == 1
    seen.clear()
    OllamaBackend(ollama.url, model="llama3.2").wait_until_ready(progress=seen.append)
    assert seen == [], "a model already loaded is not announced as loading"


def test_the_modelfile_num_ctx_is_the_context_where_ps_does_not_say(ollama: FakeOllama) -> None:
    ollama.version = "0.9.6"  # /api/ps has no context_length before 0.9.7
    backend = OllamaBackend(ollama.url, model="smollm2:135m")
    backend.wait_until_ready()
    assert backend.context_window() == 2048
    ps = [json.loads(answer.get_data()) for req, answer in ollama.server.log if req.path == "/api/ps"]
    assert ps and all("context_length" not in entry for body in ps for entry in body["models"])
    assert ollama.sent("/api/show") == [{"model": "smollm2:135m"}]


def test_no_context_is_claimed_where_ollama_does_not_say(ollama: FakeOllama) -> None:
    ollama.version = "0.9.6"
    backend = OllamaBackend(ollama.url, model="llama3.2")
    backend.wait_until_ready()
    assert backend.context_window() is None, "no num_ctx in the Modelfile and no context_length in /api/ps"
    backend.complete(CompletionRequest(prompt="Hi", max_tokens=4))
    assert "num_ctx" not in generated(ollama)[0]["options"], "Ollama's own default then applies"


def test_the_context_never_exceeds_what_the_model_was_trained_for(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="smollm2:135m")
    assert backend.trained_context() == 8192
    backend.complete(CompletionRequest(prompt="Hi", max_tokens=4, context_window=32768))
    assert generated(ollama)[0]["options"]["num_ctx"] == 8192


def test_a_prompt_that_ollama_would_silently_cut_is_refused(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.2")
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete(CompletionRequest(prompt="y" * 3000, max_tokens=100, context_window=1024))
    err = caught.value
    assert err.prompt_tokens == 1000 and err.context_window == 1024, "the documented estimate: 3 bytes per token"
    assert "OLLAMA_CONTEXT_LENGTH" in (err.fix or "") and "estimated" in str(err)
    assert not generated(ollama), "an overflowing prompt is not sent"
    backend.complete(CompletionRequest(prompt="y" * 3000, max_tokens=4, context_window=8192))
    assert len(generated(ollama)) == 1 and ollama.truncated == [], "a prompt that fits is sent whole"


# -- the chat template ------------------------------------------------------------------------------------------------


def test_a_go_template_is_not_handed_out_as_a_chat_template(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.2")
    assert backend.chat_template() is None
    assert ollama.sent("/api/show") == [{"model": "llama3.2"}]


def test_a_jinja_template_is_handed_out(ollama: FakeOllama) -> None:
    template = OllamaBackend(ollama.url, model="smollm2:135m").chat_template()
    assert template is not None and "<|im_start|>" in template.source
    assert (template.bos_token, template.eos_token) == ("", ""), "the template uses neither"
    assert ollama.sent("/api/show") == [{"model": "smollm2:135m"}], "no verbose call when BOS/EOS are not used"


def test_bos_and_eos_come_from_the_verbose_model_info(ollama: FakeOllama) -> None:
    ollama.add(FakeModel("mistral:latest", template=MISTRAL_JINJA, vocabulary=("<unk>", "<s>", "</s>", "a", "b", "c")))
    template = OllamaBackend(ollama.url, model="mistral").chat_template()
    assert template is not None and (template.bos_token, template.eos_token) == ("<s>", "</s>")
    assert ollama.sent("/api/show") == [{"model": "mistral"}, {"model": "mistral", "verbose": True}]


def test_the_auto_wrapper_renders_the_models_template(ollama: FakeOllama) -> None:
    from memgpt_core import plugins

    wrapper = plugins.get_wrapper("auto-grammar")
    wrapper.fit_to(OllamaBackend(ollama.url, model="smollm2:135m"))
    prompt = wrapper.prompt([{"role": "user", "content": "hello there"}], list(SAMPLE_FUNCTIONS))
    assert "<|im_start|>user" in prompt and prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    ("template", "jinja"),
    [
        ("{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}", False),
        ("{{- range $i, $m := .Messages }}{{ $m.Content }}{{ end }}", False),
        ("[INST] {{ .Prompt }} [/INST]", False),
        ("{% for m in messages %}{{ m['content'] }}{% endfor %}", True),
        ("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", True),
        ("", False),
    ],
)
def test_jinja_and_go_templates_are_told_apart(template: str, jinja: bool) -> None:
    assert is_jinja(template) is jinja


# -- the endpoint -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pasted",
    [
        "http://127.0.0.1:11434/api/generate",
        "http://127.0.0.1:11434/api/chat",
        "http://127.0.0.1:11434/api/tags/",
        "http://127.0.0.1:11434/api",
        "http://127.0.0.1:11434/v1",
        "http://127.0.0.1:11434/v1/chat/completions",
        "127.0.0.1:11434",
    ],
)
def test_pasted_urls_are_normalised(pasted: str) -> None:
    assert OllamaBackend(pasted).endpoint == "http://127.0.0.1:11434"


def test_https_to_a_local_port_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"http://localhost:11434"):
        OllamaBackend("https://localhost:11434")
