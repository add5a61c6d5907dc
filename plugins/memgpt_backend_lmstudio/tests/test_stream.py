"""The lmstudio and lmstudio-legacy streams: on the real llama-server's OpenAI-compatible API (which LM Studio's
llama.cpp engine shares: the same routes, chunks and ``[DONE]``), and LM Studio's own ways of failing, played by a
small server that streams as LM Studio does (see the backend module's notes: ``data: {"error": ...}`` mid-stream
since 0.3.18, errors with status 200, chat chunks with ``delta.content``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from memgpt_backend_lmstudio import LMStudioBackend, LMStudioLegacyBackend
from pytest_httpserver import HTTPServer
from werkzeug import Response

from memgpt_core.errors import BackendError, BackendResponseError, ContextOverflowError, EmptyCompletionError
from memgpt_core.models import CompletionRequest, Grammar

SCHEMA = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}
OVERFLOW = "Context length exceeded. Tokens in context: 9000, Context length: 8192"


def request(prompt: str = "The capital of France is", **kw: Any) -> CompletionRequest:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("sampling", {"temperature": 0, "seed": 1})
    return CompletionRequest(prompt=prompt, **kw)


def events(*chunks: Any, done: bool = True) -> Response:
    body = "".join(f"data: {json.dumps(c) if not isinstance(c, str) else c}\n\n" for c in chunks)
    return Response(body + ("data: [DONE]\n\n" if done else ""), content_type="text/event-stream")


def chat_chunk(content: str | None, finish: str | None = None) -> dict:
    """A chat chunk as LM Studio writes one (its users' reports show these fields)."""
    delta = {"role": "assistant", "content": content} if content is not None else {}
    return {
        "id": "chatcmpl-um3b2l9t12bzrtha63q8",
        "object": "chat.completion.chunk",
        "created": 1747835957,
        "model": "qwen2.5-7b-instruct",
        "system_fingerprint": "qwen2.5-7b-instruct",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


# -- the real llama-server ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend_class", [LMStudioBackend, LMStudioLegacyBackend])
def test_pieces_join_into_what_complete_returns(llama_server: Any, backend_class: type) -> None:
    backend = backend_class(llama_server.url)
    assert backend.capabilities.streaming
    deltas = list(backend.stream(request()))
    assert len(deltas) >= 4 and all(d.completion is None for d in deltas[:-1])
    done = deltas[-1].completion
    assert done is not None and "".join(d.text for d in deltas) == done.text
    assert done.completion_tokens == 8 and done.prompt_tokens, "stream_options brought the counts"
    whole = backend.complete(request())
    # The text itself may differ between two runs: the shared server batches other requests with these.
    assert done.model_dump(exclude={"text", "timings"}) == whole.model_dump(exclude={"text", "timings"})


@pytest.mark.parametrize("backend_class", [LMStudioBackend, LMStudioLegacyBackend])
def test_the_schema_is_respected_on_the_chat_route(llama_server: Any, backend_class: type) -> None:
    grammar = Grammar(format="json_schema", text=json.dumps(SCHEMA))
    deltas = list(backend_class(llama_server.url).stream(request("Is the sky blue?", grammar=grammar, max_tokens=24)))
    assert len(deltas) > 2, "the chat route streamed delta.content pieces"
    done = deltas[-1].completion
    assert done is not None and json.loads(done.text)["answer"] in ("yes", "no")


def test_closed_early_then_another(llama_server: Any) -> None:
    backend = LMStudioBackend(llama_server.url)
    stream = backend.stream(request("Count from one to fifty:", max_tokens=200))
    assert next(stream).text
    stream.close()
    again = list(backend.stream(request(max_tokens=3)))
    assert again[-1].completion is not None and again[-1].completion.completion_tokens == 3


# -- LM Studio's own shapes --------------------------------------------------------------------------------------------


def test_chat_stream_as_lm_studio_writes_it(httpserver: HTTPServer) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
    counts = {**chat_chunk(None), "choices": [], "usage": usage}
    httpserver.expect_request("/v1/chat/completions").respond_with_response(
        events(chat_chunk("Hel"), chat_chunk("lo"), chat_chunk(None, "stop"), counts)
    )
    deltas = list(LMStudioLegacyBackend(httpserver.url_for("/")).stream(request()))
    assert [d.text for d in deltas] == ["Hel", "lo", ""]
    done = deltas[-1].completion
    assert done is not None and done.text == "Hello" and done.prompt_tokens == 12 and done.completion_tokens == 2
    (sent,) = [json.loads(r.data) for r, _ in httpserver.log]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_an_overflow_reported_mid_stream(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/completions").respond_with_response(events({"error": {"message": OVERFLOW}}))
    with pytest.raises(ContextOverflowError) as info:
        list(LMStudioBackend(httpserver.url_for("/")).stream(request()))
    assert info.value.prompt_tokens == 9000 and info.value.context_window == 8192


def test_an_error_mid_stream(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_response(
        events(chat_chunk("Hel"), {"error": "Model crashed while generating"}, done=False)
    )
    with pytest.raises(BackendResponseError) as info:
        list(LMStudioLegacyBackend(httpserver.url_for("/")).stream(request()))
    assert "Model crashed while generating" in str(info.value)
    assert httpserver.url_for("/v1/chat/completions") in str(info.value) and info.value.fix


def test_an_error_answered_200_without_events(httpserver: HTTPServer) -> None:
    """LM Studio sometimes answers an error with status 200 and a JSON body, streamed request or not."""
    httpserver.expect_request("/v1/completions").respond_with_json({"error": "No models loaded. Please load a model."})
    with pytest.raises(BackendError, match="lms load"):
        list(LMStudioBackend(httpserver.url_for("/")).stream(request()))


def test_errors_before_the_stream_are_those_of_complete(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/completions").respond_with_json({"error": OVERFLOW}, status=400)
    with pytest.raises(ContextOverflowError):
        list(LMStudioBackend(httpserver.url_for("/")).stream(request()))


def test_a_stream_cut_short(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_response(
        events(chat_chunk("Hel"), chat_chunk("lo"), done=False)
    )
    with pytest.raises(BackendResponseError, match="cut short") as info:
        list(LMStudioLegacyBackend(httpserver.url_for("/")).stream(request()))
    assert httpserver.url_for("/v1/chat/completions") in str(info.value) and info.value.fix


def test_a_stream_of_garbage(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/completions").respond_with_response(events("Hello, I am not JSON"))
    with pytest.raises(BackendResponseError, match="not JSON") as info:
        list(LMStudioBackend(httpserver.url_for("/")).stream(request()))
    assert "1234" in (info.value.fix or ""), "the fix names LM Studio's port"


def test_an_empty_answer_is_refused_at_the_end(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/chat/completions").respond_with_response(events(chat_chunk(None, "stop")))
    with pytest.raises(EmptyCompletionError, match="context length"):
        list(LMStudioLegacyBackend(httpserver.url_for("/")).stream(request()))
