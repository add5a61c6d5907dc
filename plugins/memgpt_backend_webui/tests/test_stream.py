"""The webui backend's stream: OpenAI's completion stream against the real llama-server, and text-generation-webui's
own stream shapes against small servers that write them as its API code does (``modules/api/script.py`` and
``completions.py``; before March 2026 ``extensions/openai/``): sse-starlette events, a first chunk with empty text,
``usage`` in the finish chunk and no ``[DONE]`` in older versions; a usage chunk (on request) and ``[DONE]`` in newer
ones; a failure while generating ends the connection without an error event. webui-legacy does not stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from memgpt_backend_webui import WebUIBackend, WebUILegacyBackend
from pytest_httpserver import HTTPServer
from werkzeug import Response

from memgpt_core.errors import BackendError, BackendHTTPError, BackendResponseError, EmptyCompletionError
from memgpt_core.models import CompletionRequest, Grammar

GBNF = 'root ::= "yes" | "no"'
MODEL = "TheBloke_dolphin-2.2.1-mistral-7B-GGUF"


def request(prompt: str = "The capital of France is", **kw: Any) -> CompletionRequest:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("sampling", {"temperature": 0, "seed": 1})
    return CompletionRequest(prompt=prompt, **kw)


def chunk(text: str, finish: str | None = None, **extra: Any) -> dict:
    """A streamed chunk as text-generation-webui's text_streaming_chunk builds it."""
    choice = {"index": 0, "finish_reason": finish, "text": text, "logprobs": None}
    head = {"id": "conv-1700000000000000000", "object": "text_completion", "created": 1700000000, "model": MODEL}
    return {**head, "system_fingerprint": None, "choices": [choice], **extra}


def events(*chunks: Any, done: bool) -> Response:
    # sse-starlette, as webui sets it up (sep="\n"): "data: ...\n\n" per event, with a keep-alive comment first.
    body = ": ping - 2026-01-01 00:00:00\n\n" + "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return Response(body + ("data: [DONE]\n\n" if done else ""), content_type="text/event-stream; charset=utf-8")


def webui(httpserver: HTTPServer, answer: Response, *, model: str = MODEL) -> WebUIBackend:
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"length": 12})
    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": model, "lora_names": []})
    httpserver.expect_request("/v1/completions").respond_with_response(answer)
    return WebUIBackend(httpserver.url_for("/"))


def sent(httpserver: HTTPServer) -> list[dict]:
    return [json.loads(r.data) for r, _ in httpserver.log if r.path == "/v1/completions"]


def test_only_the_openai_api_streams() -> None:
    assert WebUIBackend.capabilities.streaming and not WebUILegacyBackend.capabilities.streaming


# -- the real llama-server ---------------------------------------------------------------------------------------------


def test_pieces_join_into_the_final_text_on_llama_server(llama_server: Any) -> None:
    backend = WebUIBackend(llama_server.url)
    deltas = list(backend.stream(request(context_window=llama_server.n_ctx)))
    assert len(deltas) >= 4 and all(d.completion is None and d.text for d in deltas[:-1])
    done = deltas[-1].completion
    assert done is not None and "".join(d.text for d in deltas) == done.text
    assert done.finish_reason == "length" and done.completion_tokens == 8 and done.prompt_tokens


def test_closed_early_then_another_on_llama_server(llama_server: Any) -> None:
    backend = WebUIBackend(llama_server.url)
    stream = backend.stream(request("Count from one to fifty:", max_tokens=200))
    assert next(stream).text
    stream.close()
    again = list(backend.stream(request(max_tokens=3)))
    assert again[-1].completion is not None and again[-1].completion.completion_tokens == 3


# -- text-generation-webui's shapes ------------------------------------------------------------------------------------


def test_an_older_webui_stream_without_done(httpserver: HTTPServer) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}
    answer = events(chunk(""), chunk("y"), chunk("es"), chunk("", "stop", usage=usage), done=False)
    backend = webui(httpserver, answer)
    deltas = list(backend.stream(request(grammar=Grammar(format="gbnf", text=GBNF), context_window=4096)))
    assert [d.text for d in deltas] == ["y", "es", ""]
    done = deltas[-1].completion
    assert done is not None and done.text == "yes" and done.finish_reason == "stop"
    assert done.prompt_tokens == 12 and done.completion_tokens == 2 and done.model == MODEL
    (body,) = sent(httpserver)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["grammar_string"] == GBNF and body["truncation_length"] == 4096


def test_a_newer_webui_stream_with_a_usage_chunk(httpserver: HTTPServer) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
    counts = {**chunk(""), "choices": [], "usage": usage}
    answer = events(
        chunk("", usage=None), chunk("one two", usage=None), chunk("", "length", usage=None), counts, done=True
    )
    deltas = list(webui(httpserver, answer).stream(request()))
    done = deltas[-1].completion
    assert (
        done is not None and done.text == "one two" and done.finish_reason == "length" and done.completion_tokens == 8
    )


def test_stream_and_complete_send_one_body(httpserver: HTTPServer) -> None:
    backend = webui(httpserver, events(chunk("yes", "stop"), done=True))
    list(backend.stream(request(stop=["\n"], context_window=2048)))
    (streamed,) = sent(httpserver)
    httpserver.clear()
    answer = {"model": MODEL, "choices": [{"index": 0, "text": "yes", "finish_reason": "stop"}]}
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"length": 12})
    httpserver.expect_request("/v1/completions").respond_with_json(answer)
    backend.complete(request(stop=["\n"], context_window=2048))
    (completed,) = sent(httpserver)
    assert streamed.pop("stream") is True and streamed.pop("stream_options") == {"include_usage": True}
    assert completed.pop("stream") is False and streamed == completed


def test_a_stream_cut_short(httpserver: HTTPServer) -> None:
    with pytest.raises(BackendResponseError, match="cut short") as info:
        list(webui(httpserver, events(chunk(""), chunk("y"), done=False)).stream(request()))
    assert httpserver.url_for("/v1/completions") in str(info.value) and info.value.fix


def test_a_stream_that_breaks_off_with_no_model_loaded(httpserver: HTTPServer) -> None:
    # encode() fails inside the event generator: the response has begun, so the connection just ends.
    with pytest.raises(BackendError, match="no model loaded") as info:
        list(webui(httpserver, events(done=False), model="None").stream(request()))
    assert "Model tab" in (info.value.fix or "")


def test_a_stream_of_garbage(httpserver: HTTPServer) -> None:
    page = Response("<html><body>Bad gateway</body></html>", content_type="text/html")
    with pytest.raises(BackendResponseError, match="HTML page") as info:
        list(webui(httpserver, page).stream(request()))
    assert "BACKEND_TYPE" in (info.value.fix or "")


def test_an_error_object_mid_stream(httpserver: HTTPServer) -> None:
    error = {"error": {"message": "CUDA out of memory", "type": "OpenAIError", "code": 500}}
    with pytest.raises(BackendResponseError, match="CUDA out of memory") as info:
        list(webui(httpserver, events(chunk("y"), error, done=False)).stream(request()))
    assert httpserver.url_for("/v1/completions") in str(info.value) and info.value.fix


def test_an_http_error_before_the_stream_is_what_complete_raises(httpserver: HTTPServer) -> None:
    refused = Response(json.dumps({"detail": "Unauthorized"}), status=401, content_type="application/json")
    with pytest.raises(BackendHTTPError) as info:
        list(webui(httpserver, refused).stream(request()))
    assert info.value.status == 401 and str(info.value).startswith("text-generation-webui at ")
    assert "MEMGPT_API_KEY" in (info.value.fix or "")


def test_an_empty_answer_is_refused_at_the_end(httpserver: HTTPServer) -> None:
    with pytest.raises(EmptyCompletionError):
        list(webui(httpserver, events(chunk(""), chunk("", "stop"), done=True)).stream(request()))
