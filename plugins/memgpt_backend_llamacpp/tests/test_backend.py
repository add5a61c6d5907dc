"""The llamacpp backend against a real llama-server: completions, grammars, tokens, context size, cut-off, caching."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from llamacpp_prompts import CALL_GBNF, chatml
from memgpt_backend_llamacpp import LlamaCppBackend

from memgpt_core import plugins
from memgpt_core.errors import BackendResponseError
from memgpt_core.models import Completion, CompletionRequest, Grammar
from memgpt_core.testing import BackendConformance


def test_registered():
    assert plugins.get_backends()["llamacpp"] is LlamaCppBackend


def test_plain_completion(backend):
    result = backend.complete(
        CompletionRequest(prompt=chatml("Name one colour."), max_tokens=12, sampling={"temperature": 0})
    )
    assert result.text.strip()
    assert result.finish_reason in ("stop", "length")
    assert result.completion_tokens and 0 < result.completion_tokens <= 12
    assert result.prompt_tokens == backend.count_tokens(chatml("Name one colour."))
    assert result.timings is not None and result.timings.predicted_n == result.completion_tokens
    assert result.model and result.model.endswith(".gguf")


def test_gbnf_grammar_output_parses(backend):
    request = CompletionRequest(
        prompt=chatml("Greet the user by calling a function.", system="Answer with one JSON function call."),
        max_tokens=60,
        grammar=Grammar(format="gbnf", text=CALL_GBNF),
        sampling={"temperature": 0.7, "seed": 7},
    )
    result = backend.complete(request)
    call = json.loads(result.text)
    assert call["function"] in ("send_message", "core_memory_append")
    assert isinstance(call["message"], str) and call["message"]


def test_json_schema_grammar_output_parses(backend):
    schema = {
        "type": "object",
        "properties": {"name": {"enum": ["send_message"]}, "count": {"type": "integer", "minimum": 0, "maximum": 9}},
        "required": ["name", "count"],
        "additionalProperties": False,
    }
    result = backend.complete(
        CompletionRequest(
            prompt=chatml("Reply with JSON."),
            max_tokens=40,
            grammar=Grammar(format="json_schema", text=json.dumps(schema)),
        )
    )
    data = json.loads(result.text)
    assert data["name"] == "send_message" and 0 <= data["count"] <= 9


def test_count_tokens_is_the_servers_tokenizer(backend, llama_server):
    import requests

    text = "<|im_start|>user\nHow many tokens is this, exactly?<|im_end|>\n"
    expected = requests.post(llama_server.url + "/tokenize", json={"content": text}, timeout=30).json()["tokens"]
    assert backend.count_tokens(text) == len(expected)
    # ChatML markers are one token each in SmolLM2: the count must not be a character-based guess.
    assert backend.count_tokens("<|im_start|>") == 1


def test_context_window_is_read_from_props(backend, llama_server):
    assert backend.context_window() == llama_server.n_ctx
    assert backend.total_slots() == llama_server.total_slots


def test_the_models_chat_template_is_read_from_props(backend, llama_server):
    template = backend.chat_template()
    assert template is not None
    # SmolLM2 speaks ChatML: its template writes the turn markers, and the server names its BOS and EOS strings.
    assert "<|im_start|>" in template.source and template.source == llama_server.props["chat_template"]
    assert (template.bos_token, template.eos_token) == (
        llama_server.props["bos_token"],
        llama_server.props["eos_token"],
    )


def test_context_window_disagreement_is_warned_once(backend, llama_server, caplog):
    with caplog.at_level(logging.WARNING, logger="memgpt.backend.llamacpp"):
        first = backend.check_context_window(llama_server.n_ctx * 2)
        again = backend.check_context_window(llama_server.n_ctx * 2)
        same = backend.check_context_window(llama_server.n_ctx)
    assert first and str(llama_server.n_ctx) in first and llama_server.url in first
    assert again is None and same is None
    assert len([r for r in caplog.records if "context window" in r.getMessage()]) == 1


def test_cut_off_output_reports_length(backend):
    result = backend.complete(
        CompletionRequest(prompt=chatml("Write a long story about the sea."), max_tokens=3, sampling={"temperature": 0})
    )
    assert result.finish_reason == "length"
    assert result.completion_tokens == 3


def test_stop_string_ends_output_with_stop(backend):
    result = backend.complete(
        CompletionRequest(
            prompt=chatml("Count: 1, 2, 3, 4, 5, 6"),
            max_tokens=40,
            stop=["4"],
            grammar=Grammar(format="gbnf", text='root ::= "1, 2, 3, 4, 5"'),
        )
    )
    assert result.finish_reason == "stop"
    assert result.text == "1, 2, 3, "


def test_prompt_cache_evaluates_only_the_new_suffix(backend):
    # A long shared prefix, like an agent's system prompt and memory; then two different last turns.
    prefix = chatml(" ".join(f"Fact {i}: the sky over town {i} was clear." for i in range(60)))
    key = "test-prompt-cache-agent"
    # End-of-text banned: an assistant turn that already reads "Fine." may end at once, and an empty answer is an
    # error; what is checked here is the prompt's evaluation, not the answer.
    first = backend.complete(CompletionRequest(prompt=prefix + "Fine.", max_tokens=2, cache_key=key, ban_eos=True))
    second = backend.complete(
        CompletionRequest(prompt=prefix + "Good, thanks.", max_tokens=2, cache_key=key, ban_eos=True)
    )
    assert first.prompt_tokens and first.prompt_tokens > 500
    assert second.timings is not None and second.timings.prompt_n is not None
    # Only the new tail (a few tokens) is evaluated; the prefix comes from the slot's cache.
    assert second.timings.prompt_n < 20, second.timings
    assert second.timings.cache_n and second.timings.cache_n > 500


def test_slot_is_stable_per_agent(backend, llama_server):
    slots = {backend.slot_for(f"agent-{i}") for i in range(40)}
    assert slots <= set(range(llama_server.total_slots))
    assert len(slots) > 1  # agents are spread over the slots
    assert backend.slot_for("agent-7") == LlamaCppBackend(llama_server.url).slot_for("agent-7")
    assert backend.slot_for(None) is None


REPRODUCIBLE = {"cache_prompt": False}
"""Sent with requests whose seeded samples are compared. llama.cpp's server documentation says of ``cache_prompt``
that logits are not guaranteed bit-for-bit identical between batch sizes (prompt processing against generation), so
reusing the cache can change a seeded sample; without it each request evaluates its whole prompt the same way."""


def test_sampling_settings_reach_the_server(backend):
    # With a fixed seed and temperature the server is deterministic; a different seed at high temperature differs.
    prompt = chatml("Say a random word.")

    def run(seed: int) -> Completion:
        sampling = {"temperature": 5.0, "top_k": 0, "seed": seed, **REPRODUCIBLE}
        return backend.complete(CompletionRequest(prompt=prompt, max_tokens=8, sampling=sampling))

    first, again = run(1), run(1)
    # The second run evaluated its whole prompt again (no cache reuse), so the two are comparable.
    assert again.timings is not None and again.timings.prompt_n == again.prompt_tokens, (
        "cache_prompt: false did not reach the server (the backend must let sampling turn the prompt cache off)"
    )
    assert first.text == again.text
    assert len({first.text, run(2).text, run(3).text}) > 1


def test_api_key_is_sent_as_bearer(llama_server_factory):
    server = llama_server_factory(ctx_size=512, api_key="test-key-123")
    assert LlamaCppBackend(server.url, api_key="test-key-123").count_tokens("hello") > 0
    from memgpt_core.errors import BackendHTTPError

    with pytest.raises(BackendHTTPError) as info:
        LlamaCppBackend(server.url).count_tokens("hello")
    assert info.value.status == 401
    assert "MEMGPT_API_KEY" in info.value.fix
    with pytest.raises(BackendHTTPError) as info:
        LlamaCppBackend(server.url, api_key="wrong-key").count_tokens("hello")
    assert "wrong-key" not in str(info.value)


@pytest.mark.parametrize(
    "given",
    ["http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/completion", "http://127.0.0.1:8080/", "127.0.0.1:8080"],
)
def test_base_url_is_normalised(given):
    assert LlamaCppBackend(given).endpoint == "http://127.0.0.1:8080"


def test_no_endpoint_means_port_8080():
    assert LlamaCppBackend().endpoint == "http://127.0.0.1:8080"


class TestConformance(BackendConformance):
    """Core's conformance kit, with its live checks run against the session's real llama-server."""

    backend_class = LlamaCppBackend

    @pytest.fixture
    def endpoint(self, llama_server) -> str:
        return llama_server.url


def test_sampling_cannot_override_the_requests_own_fields(backend):
    result = backend.complete(
        CompletionRequest(
            prompt=chatml("Write a poem."),
            max_tokens=2,
            sampling={"max_tokens": 50, "n_predict": 50, "prompt": "ignored", "temperature": 0},
        )
    )
    assert result.completion_tokens == 2
    assert result.prompt_tokens == backend.count_tokens(chatml("Write a poem."))


# -- a JSON API that is not llama.cpp's on the configured port ---------------------------------------------------------


class _OtherJSONAPI(http.server.BaseHTTPRequestHandler):
    """A real local web server that answers every request with JSON of another shape (what a proxy, or another
    program's API on the port the user configured, sends back)."""

    BODY = json.dumps({"model": "other", "response": "Hello there", "done": True}).encode()

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherJSONAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("call", "path", "wanted"),
    [
        (
            lambda b: b.complete(CompletionRequest(prompt="Hi", max_tokens=4)),
            "/completion",
            "an object with a 'content' string",
        ),
        (lambda b: b.count_tokens("Hi"), "/tokenize", "a 'tokens' list"),
        (lambda b: b.context_window(), "/props", "default_generation_settings.n_ctx"),
    ],
    ids=["completion", "tokenize", "props"],
)
def test_json_of_another_shape_is_a_sentence_naming_the_url_and_what_was_missing(other_api, call, path, wanted):
    with pytest.raises(BackendResponseError) as caught:
        call(LlamaCppBackend(other_api, timeout=10))
    message = str(caught.value)
    assert caught.value.url == other_api + path
    assert f"answered JSON without {wanted}" in message
    assert '"response": "Hello there"' in message, "the answer is shown, so the user sees which program replied"
    assert caught.value.fix is not None and "BACKEND_TYPE" in caught.value.fix
