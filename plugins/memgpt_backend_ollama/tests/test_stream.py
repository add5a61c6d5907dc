"""The ollama backend's stream against the fake Ollama (fake_ollama.py), which streams NDJSON as Ollama's API
documentation says: the pieces as they come, the last line read as complete() reads its answer, and every way a
stream goes wrong raising a BackendError that names the URL and the fix."""

from __future__ import annotations

import json

import pytest
from fake_ollama import CALL, RUN_FAILED, STORY, FakeOllama
from memgpt_backend_ollama import OllamaBackend

from memgpt_core.errors import (
    BackendError,
    BackendResponseError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
)
from memgpt_core.models import CompletionRequest, Grammar

SCHEMA = {
    "type": "object",
    "properties": {"function": {"const": "send_message"}, "params": {"type": "object"}},
    "required": ["function", "params"],
}


def story(**kw: object) -> CompletionRequest:
    return CompletionRequest(prompt="Tell me a story.", max_tokens=200, context_window=2048, **kw)  # type: ignore[arg-type]


def prompted(fake: FakeOllama) -> list[dict]:
    return [body for body in fake.sent("/api/generate") if body.get("prompt")]


def assert_named(err: BackendError, fake: FakeOllama) -> None:
    assert fake.url + "/api/generate" in str(err) and err.fix


def test_the_declared_capability() -> None:
    assert OllamaBackend.capabilities.streaming


def test_pieces_arrive_and_the_last_carries_what_complete_returns(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.2")
    deltas = list(backend.stream(story()))
    *pieces, last = deltas
    assert len(pieces) > 5, "the text came in one lump"
    assert all(d.completion is None and d.text for d in pieces)
    assert last.completion is not None and last.text == ""
    assert "".join(d.text for d in deltas) == last.completion.text == STORY

    whole = backend.complete(story())
    assert last.completion.model_dump(exclude={"timings"}) == whole.model_dump(exclude={"timings"})
    assert last.completion.timings is not None and last.completion.timings.predicted_n == whole.completion_tokens

    streamed, completed = prompted(ollama)
    assert streamed.pop("stream") is True and completed.pop("stream") is False
    assert streamed == completed, "stream and complete sent different requests"


def test_the_schema_and_the_cap_reach_the_stream(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.2")
    deltas = list(backend.stream(story(grammar=Grammar(format="json_schema", text=json.dumps(SCHEMA)))))
    assert deltas[-1].completion is not None and deltas[-1].completion.text == CALL
    assert prompted(ollama)[0]["format"] == SCHEMA

    capped = list(backend.stream(CompletionRequest(prompt="Tell me a story.", max_tokens=3, context_window=2048)))
    done = capped[-1].completion
    assert done is not None and done.finish_reason == "length" and done.text == STORY[:12]


def test_closing_early_then_another_stream(ollama: FakeOllama) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.2")
    stream = backend.stream(story())
    first = next(stream)
    assert first.text == STORY[:4]
    stream.close()
    again = list(backend.stream(story()))
    assert again[-1].completion is not None and again[-1].completion.text == STORY


def test_an_error_line_mid_stream(ollama: FakeOllama) -> None:
    ollama.fail_after = 3
    received = []
    with pytest.raises(BackendResponseError) as info:
        for delta in OllamaBackend(ollama.url, model="llama3.2").stream(story()):
            received.append(delta.text)
    assert "".join(received) == STORY[:12], "the pieces before the error were yielded"
    assert RUN_FAILED in str(info.value)
    assert_named(info.value, ollama)


def test_a_stream_cut_short(ollama: FakeOllama) -> None:
    ollama.cut_after = 5
    with pytest.raises(BackendResponseError) as info:
        list(OllamaBackend(ollama.url, model="llama3.2").stream(story()))
    assert "cut short" in str(info.value)
    assert_named(info.value, ollama)


def test_a_line_that_is_not_json(ollama: FakeOllama) -> None:
    ollama.garbage_after = 2
    with pytest.raises(BackendResponseError) as info:
        list(OllamaBackend(ollama.url, model="llama3.2").stream(story()))
    assert "not JSON" in str(info.value) and "502 Bad Gateway" in str(info.value)
    assert_named(info.value, ollama)
    assert "Ollama" in (info.value.fix or "")


def test_errors_before_the_stream_are_those_of_complete(ollama: FakeOllama) -> None:
    with pytest.raises(ConfigError) as unknown:
        list(OllamaBackend(ollama.url, model="mistral").stream(story()))
    assert "llama3.2" in str(unknown.value), "the models the server has are listed"

    ollama.context_shift = False
    ollama.default_context = 64
    with pytest.raises(ContextOverflowError):
        # The estimate passes (no window given, the model's context is unknown), the server refuses the prompt.
        list(OllamaBackend(ollama.url, model="llama3.2").stream(CompletionRequest(prompt="word " * 400, max_tokens=8)))


def test_an_empty_answer_is_refused_at_the_end(ollama: FakeOllama) -> None:
    with pytest.raises(EmptyCompletionError) as info:
        list(OllamaBackend(ollama.url, model="llama3.2").stream(story(stop=["Once"])))
    assert info.value.fix
