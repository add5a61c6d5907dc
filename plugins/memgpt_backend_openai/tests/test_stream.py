"""The openai and vllm backends' streams: on the real llama-server's /v1 (pieces, the grammar, an early close), and
on the fake vLLM (fake_vllm.py), which streams as vLLM's serving code does, for vLLM's shapes and every way a stream
goes wrong. A llama.cpp older than the one here wrote a mid-stream error as a bare ``error:`` line; that shape is
played by a small server below."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fake_vllm import FakeVLLM
from memgpt_backend_openai import OpenAIBackend, VLLMBackend
from pytest_httpserver import HTTPServer
from werkzeug import Response

from memgpt_core.errors import BackendError, BackendResponseError, ContextOverflowError, EmptyCompletionError
from memgpt_core.models import CompletionRequest, Grammar

YES_NO = 'root ::= "yes" | "no"'


def request(prompt: str = "The capital of France is", **kw: Any) -> CompletionRequest:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("sampling", {"temperature": 0, "seed": 1})
    return CompletionRequest(prompt=prompt, **kw)


def assert_named(err: BackendError, url: str) -> None:
    assert url in str(err) and err.fix


# -- the real llama-server ---------------------------------------------------------------------------------------------


def test_llama_server_streams_pieces_that_join_into_what_complete_returns(llama_server: Any) -> None:
    backend = OpenAIBackend(llama_server.url, timeout=120)
    deltas = list(backend.stream(request()))
    assert backend.capabilities.streaming
    *pieces, last = deltas
    assert len(pieces) >= 3, f"the answer came in one lump: {pieces}"
    assert all(d.completion is None for d in pieces)
    done = last.completion
    assert done is not None and "".join(d.text for d in deltas) == done.text
    assert done.completion_tokens == 8 and done.finish_reason == "length" and done.prompt_tokens
    assert done.timings is not None and done.timings.predicted_n == 8
    whole = backend.complete(request())
    # The text itself may differ between two runs: the shared server batches other requests with these.
    assert done.model_dump(exclude={"text", "timings"}) == whole.model_dump(exclude={"text", "timings"})


def test_llama_server_stream_respects_the_grammar(llama_server: Any) -> None:
    backend = OpenAIBackend(llama_server.url, timeout=120)
    grammar = Grammar(format="gbnf", text=YES_NO)
    deltas = list(backend.stream(request("Is water wet? Answer:", grammar=grammar, max_tokens=16)))
    done = deltas[-1].completion
    assert done is not None and done.text in ("yes", "no") and done.finish_reason == "stop"


def test_llama_server_stream_closed_early_then_another(llama_server: Any) -> None:
    backend = OpenAIBackend(llama_server.url, timeout=120)
    stream = backend.stream(request("Count from one to fifty:", max_tokens=200))
    first = next(stream)
    assert first.text and first.completion is None
    stream.close()
    again = list(backend.stream(request(max_tokens=4)))
    assert again[-1].completion is not None and again[-1].completion.completion_tokens == 4


def test_llama_server_overflow_before_the_stream_is_what_complete_raises(llama_server: Any) -> None:
    backend = OpenAIBackend(llama_server.url, timeout=120)
    with pytest.raises(ContextOverflowError) as info:
        list(backend.stream(request("hello world " * (llama_server.n_ctx + 100), max_tokens=4)))
    assert info.value.context_window == llama_server.n_ctx


# -- vLLM (the fake) ---------------------------------------------------------------------------------------------------


def test_vllm_stream_sends_complete_s_body_and_reads_the_usage_chunk(vllm: FakeVLLM) -> None:
    backend = VLLMBackend(vllm.url)
    schema = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"]}
    grammar = Grammar(format="json_schema", text=json.dumps(schema))
    deltas = list(backend.stream(request(grammar=grammar, stop=["\n"])))
    done = deltas[-1].completion
    assert done is not None and json.loads(done.text) == {"answer": "yes"}
    whole = backend.complete(request(grammar=grammar, stop=["\n"]))
    assert done == whole, "the stream's completion is complete()'s"
    streamed, completed = vllm.sent("/v1/completions")
    assert streamed.pop("stream") is True and streamed.pop("stream_options") == {"include_usage": True}
    assert completed.pop("stream") is False and streamed == completed


def test_vllm_stream_pieces_and_counts(vllm: FakeVLLM) -> None:
    deltas = list(VLLMBackend(vllm.url).stream(request(max_tokens=3)))
    assert [d.text for d in deltas] == ["the", " quick", " brown", ""]
    done = deltas[-1].completion
    assert done is not None and done.finish_reason == "length" and done.completion_tokens == 3
    assert done.prompt_tokens == 6 and done.model == "Qwen/Qwen2.5-7B-Instruct"


@pytest.mark.parametrize("version", ["0.9.2", "0.11.0"])
def test_vllm_error_mid_stream(vllm: FakeVLLM, version: str) -> None:
    vllm.version = version
    vllm.stream_error_after = 2
    received = []
    with pytest.raises(BackendResponseError) as info:
        for delta in VLLMBackend(vllm.url).stream(request()):
            received.append(delta.text)
    assert received == ["the", " quick"]
    assert "illegal memory access" in str(info.value)
    assert_named(info.value, vllm.url + "/v1/completions")


def test_vllm_stream_cut_short(vllm: FakeVLLM) -> None:
    vllm.stream_cut_after = 3
    with pytest.raises(BackendResponseError) as info:
        list(VLLMBackend(vllm.url).stream(request()))
    assert "cut short" in str(info.value)
    assert_named(info.value, vllm.url + "/v1/completions")


def test_vllm_stream_of_garbage(vllm: FakeVLLM) -> None:
    vllm.stream_garbage_after = 1
    with pytest.raises(BackendResponseError) as info:
        list(VLLMBackend(vllm.url).stream(request()))
    assert "not JSON" in str(info.value) and "upstream hiccup" in str(info.value)
    assert_named(info.value, vllm.url + "/v1/completions")
    assert "OPENAI_API_BASE" in (info.value.fix or "")


def test_vllm_overflow_before_the_stream(vllm: FakeVLLM) -> None:
    with pytest.raises(ContextOverflowError) as info:
        list(VLLMBackend(vllm.url).stream(request("word " * 5000)))
    assert info.value.context_window == 4096 and info.value.prompt_tokens == 5001


def test_vllm_empty_answer_is_refused_at_the_end(vllm: FakeVLLM) -> None:
    with pytest.raises(EmptyCompletionError):
        list(VLLMBackend(vllm.url).stream(request(stop=["the"])))


# -- an older llama.cpp: the error as an `error:` line --------------------------------------------------------------


def test_old_llama_cpp_error_line_is_read(httpserver: HTTPServer) -> None:
    """llama.cpp servers before the server-context rewrite sent ``error: {...}`` (not an SSE field) and then
    ``data: [DONE]``; a prompt too long for the slot came that way, and must still make the agent summarise."""
    card = {"id": "model.gguf", "object": "model", "owned_by": "llamacpp", "meta": {"n_ctx": 2048}}
    httpserver.expect_request("/v1/models").respond_with_json({"object": "list", "data": [card]})
    error = {
        "code": 400,
        "message": "the request exceeds the available context size, try increasing the context size or enable "
        "context shift",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 3000,
        "n_ctx": 2048,
    }
    body = f"error: {json.dumps(error)}\n\ndata: [DONE]\n\n"
    httpserver.expect_request("/v1/completions").respond_with_response(Response(body, content_type="text/event-stream"))
    with pytest.raises(ContextOverflowError) as info:
        list(OpenAIBackend(httpserver.url_for("/")).stream(request()))
    assert info.value.prompt_tokens == 3000 and info.value.context_window == 2048


def test_a_server_that_ignores_stream_is_read_as_one_piece(httpserver: HTTPServer) -> None:
    """An OpenAI-compatible server that does not stream answers the whole completion as JSON."""
    httpserver.expect_request("/v1/models").respond_with_json({"object": "list", "data": [{"id": "m"}]})
    httpserver.expect_request("/props").respond_with_json({"detail": "Not Found"}, status=404)
    answer = {"model": "m", "choices": [{"index": 0, "text": "Paris.", "finish_reason": "stop"}]}
    httpserver.expect_request("/v1/completions").respond_with_json(answer)
    deltas = list(OpenAIBackend(httpserver.url_for("/")).stream(request()))
    assert len(deltas) == 1 and deltas[0].completion is not None and deltas[0].completion.text == "Paris."
    (sent,) = [json.loads(r.data) for r, _ in httpserver.log if r.path == "/v1/completions"]
    assert sent["stream"] is True and "stream_options" not in sent, "a server of unknown kind gets no extra field"
