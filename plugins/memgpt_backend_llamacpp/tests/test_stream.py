"""The llamacpp backend's ``stream``: against the real llama-server, and against a small fake for what a healthy server
never does (a stream cut off, garbage, silence, an error object mid-stream).

The fake answers as llama.cpp's server does (tools/server/README.md, "POST /completion", and the server source):
``Content-Type: text/event-stream``, chunked, one ``data: {json}`` event per token with ``content`` and ``"stop":
false``, and a last object with ``"stop": true``, an empty ``content``, ``stop_type``, ``tokens_evaluated``,
``tokens_predicted`` and ``timings``. A failure after the stream began is ``data: {"error": {"code", "message",
"type"}}`` in current servers, an ``error: {json}`` line in older ones (their ``server_sent_event(sink, "error",
...)``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from llamacpp_prompts import CALL_GBNF, chatml
from memgpt_backend_llamacpp import LlamaCppBackend

from memgpt_core.backend import Delta
from memgpt_core.errors import (
    BackendHTTPError,
    BackendResponseError,
    BackendTimeoutError,
    ContextOverflowError,
    EmptyCompletionError,
)
from memgpt_core.models import CompletionRequest, Grammar

# -- the real llama-server ------------------------------------------------------------------------------------------


def test_pieces_arrive_one_by_one_and_join_to_the_completion(backend):
    request = CompletionRequest(prompt=chatml("Tell me a story about a cat."), max_tokens=16, ban_eos=True)
    pieces = list(backend.stream(request))
    assert all(isinstance(piece, Delta) for piece in pieces)
    assert len([piece for piece in pieces if piece.text]) > 1
    assert [piece.completion is not None for piece in pieces] == [False] * (len(pieces) - 1) + [True]
    done = pieces[-1].completion
    assert done.text == "".join(piece.text for piece in pieces)
    assert done.finish_reason == "length"
    assert done.completion_tokens == 16
    assert done.prompt_tokens == backend.count_tokens(request.prompt)
    assert done.timings is not None and done.timings.predicted_n == 16
    assert done.model and done.model.endswith(".gguf")


def test_streamed_text_equals_the_completed_text_for_a_seeded_grammar_request(backend):
    # llama.cpp's documented determinism: the same seed, without the prompt cache, gives the same tokens.
    request = CompletionRequest(
        prompt=chatml("Greet the user by calling a function.", system="Answer with one JSON function call."),
        max_tokens=60,
        grammar=Grammar(format="gbnf", text=CALL_GBNF),
        sampling={"temperature": 0.9, "seed": 11, "cache_prompt": False},
    )
    whole = backend.complete(request)
    pieces = list(backend.stream(request))
    streamed = pieces[-1].completion
    assert "".join(piece.text for piece in pieces) == streamed.text == whole.text
    assert json.loads(streamed.text)["function"] in ("send_message", "core_memory_append")
    assert (streamed.finish_reason, streamed.completion_tokens, streamed.prompt_tokens) == (
        whole.finish_reason,
        whole.completion_tokens,
        whole.prompt_tokens,
    )


def test_a_stop_string_ends_the_stream_and_is_never_sent(backend):
    request = CompletionRequest(
        prompt="Count from one to ten in words: one, two, three,",
        max_tokens=40,
        stop=[" six"],
        sampling={"temperature": 0, "cache_prompt": False},
    )
    whole = backend.complete(request)
    pieces = list(backend.stream(request))
    done = pieces[-1].completion
    assert done.text == whole.text
    assert " six" not in "".join(piece.text for piece in pieces)
    assert done.finish_reason == whole.finish_reason


def test_closing_the_stream_early_stops_the_generation(backend, llama_server):
    slot = backend.slot_for("stream-early-close")
    request = CompletionRequest(
        prompt=chatml("Write a very long story."), max_tokens=4000, ban_eos=True, cache_key="stream-early-close"
    )
    stream = backend.stream(request)
    assert next(stream).completion is None
    assert next(stream).completion is None
    task = _running_task(llama_server.url, slot)
    assert task is not None, f"slot {slot} is not generating the streamed answer"
    stream.close()
    # 4000 tokens take the small model a minute here; a released connection makes llama-server end the task at
    # once. (Other tests may start their own task on the slot meanwhile: only this task must be gone.)
    deadline = time.monotonic() + 10
    while _running_task(llama_server.url, slot) == task:
        assert time.monotonic() < deadline, f"slot {slot} kept generating after the stream was closed"
        time.sleep(0.1)
    again = backend.complete(CompletionRequest(prompt="Once upon a time", max_tokens=4, cache_key="stream-early-close"))
    assert again.completion_tokens and again.completion_tokens <= 4


def test_a_prompt_over_the_context_is_a_context_overflow_in_a_stream_too(backend, llama_server):
    prompt = "word " * (llama_server.n_ctx + 200)
    stream = backend.stream(CompletionRequest(prompt=prompt, max_tokens=4))
    with pytest.raises(ContextOverflowError) as caught:
        next(stream)
    assert caught.value.context_window == llama_server.n_ctx
    assert caught.value.prompt_tokens and caught.value.prompt_tokens > llama_server.n_ctx
    assert backend.endpoint in str(caught.value)


def test_an_invalid_grammar_in_a_stream_is_refused_as_without_one(backend):
    request = CompletionRequest(prompt="hi", max_tokens=4, grammar=Grammar(format="gbnf", text="root ::= undefined"))
    with pytest.raises(BackendHTTPError) as streamed:
        list(backend.stream(request))
    with pytest.raises(BackendHTTPError) as whole:
        backend.complete(request)
    assert streamed.value.status == whole.value.status == 400
    assert streamed.value.fix == whole.value.fix and "grammar" in streamed.value.fix


def _running_task(url: str, slot: int | None) -> int | None:
    """The task the slot is generating (``GET /slots``), or None while it is idle."""
    import requests

    for entry in requests.get(url + "/slots", timeout=10).json():
        if entry["id"] == slot and entry["is_processing"]:
            return entry["id_task"]
    return None


# -- a fake llama-server for what the real one does not do on demand ------------------------------------------------

Script = Callable[["_Fake"], None]


class _Fake(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: ClassVar[list[Script]] = []
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.bodies.append(json.loads(self.rfile.read(length)))
        self.script[0](self)

    def start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def event(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def token(self, content: str, n: int) -> None:
        piece = {"index": 0, "content": content, "tokens": [n], "stop": False, "id_slot": -1, "tokens_predicted": n}
        self.event(f"data: {json.dumps(piece)}\n\n")

    def final(self, *, n: int, content: str = "", stop_type: str = "limit") -> None:
        last = {
            "index": 0,
            "content": content,
            "tokens": [],
            "id_slot": 0,
            "stop": True,
            "model": "fake.gguf",
            "tokens_predicted": n,
            "tokens_evaluated": 7,
            "stop_type": stop_type,
            "stopping_word": "",
            "timings": {"prompt_n": 7, "prompt_ms": 1.5, "predicted_n": n, "predicted_ms": 9.0, "cache_n": 0},
        }
        self.event(f"data: {json.dumps(last)}\n\n")

    def end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[LlamaCppBackend, list[Script], list[dict[str, Any]], threading.Event]]:
    release = threading.Event()
    handler = type("Fake", (_Fake,), {"script": [], "bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            LlamaCppBackend(f"http://127.0.0.1:{server.server_address[1]}", timeout=5),
            handler.script,
            handler.bodies,
            release,
        )
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


REQUEST = CompletionRequest(prompt="Once upon a time", max_tokens=8, stop=["\n"])


def test_the_fake_is_read_like_the_real_server(fake):
    backend, script, bodies, _ = fake

    def answer(h: _Fake) -> None:
        h.start()
        for n, word in enumerate(["Once", " more", "."], start=1):
            h.token(word, n)
        h.event(": keep-alive comment\n\n")
        h.final(n=3, stop_type="eos")
        h.end()

    script.append(answer)
    pieces = list(backend.stream(REQUEST))
    assert [piece.text for piece in pieces] == ["Once", " more", ".", ""]
    done = pieces[-1].completion
    assert (done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens) == ("Once more.", "stop", 7, 3)
    assert done.timings is not None and done.timings.predicted_ms == 9.0
    # The body is complete()'s, with only the stream flag changed.
    body = bodies[0]
    assert body["stream"] is True and body["prompt"] == REQUEST.prompt and body["n_predict"] == 8
    assert body["stop"] == ["\n"] and body["cache_prompt"] is True


def test_a_stream_that_ends_without_its_last_object_was_cut_short(fake):
    backend, script, _, _ = fake

    def answer(h: _Fake) -> None:
        h.start()
        h.token("Once", 1)
        h.token(" more", 2)
        h.end()

    script.append(answer)
    stream = backend.stream(REQUEST)
    assert [next(stream).text, next(stream).text] == ["Once", " more"]
    with pytest.raises(BackendResponseError) as caught:
        next(stream)
    assert "ended its stream after 2 pieces" in str(caught.value) and "cut short" in str(caught.value)
    assert caught.value.url == backend.endpoint + "/completion"
    assert caught.value.fix


def test_a_connection_dropped_mid_stream_was_cut_short(fake):
    backend, script, _, _ = fake

    def answer(h: _Fake) -> None:
        h.start()
        h.token("Once", 1)
        h.wfile.write(b'80\r\ndata: {"content": " mo')
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)

    script.append(answer)
    stream = backend.stream(REQUEST)
    assert next(stream).text == "Once"
    with pytest.raises(BackendResponseError, match="closed the stream before the answer was complete"):
        next(stream)


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("data: <html>oops</html>", "not a JSON object: '<html>oops</html>'"),
        ('data: {"text": "no content field"}', "without a 'content' string in a streamed piece"),
        ('data: ["a", "list"]', "not a JSON object"),
    ],
)
def test_garbage_in_the_stream_names_the_url(fake, line, said):
    backend, script, _, _ = fake

    def answer(h: _Fake) -> None:
        h.start()
        h.token("Once", 1)
        h.event(line + "\n\n")
        h.final(n=2)
        h.end()

    script.append(answer)
    stream = backend.stream(REQUEST)
    assert next(stream).text == "Once"
    with pytest.raises(BackendResponseError) as caught:
        next(stream)
    assert said in str(caught.value)
    assert f"{backend.endpoint}/completion" in str(caught.value)


def test_a_stall_past_the_timeout_is_a_timeout(fake):
    backend, script, _, release = fake
    backend.timeout = 0.5

    def answer(h: _Fake) -> None:
        h.start()
        h.token("Once", 1)
        release.wait(10)

    script.append(answer)
    stream = backend.stream(REQUEST)
    assert next(stream).text == "Once"
    with pytest.raises(BackendTimeoutError, match=r"stopped sending for 0\.5 s in the middle of its answer"):
        next(stream)


@pytest.mark.parametrize("old_style", [False, True], ids=["data-error", "error-line"])
def test_an_error_object_mid_stream_is_read_like_the_http_error(fake, old_style):
    backend, script, _, _ = fake
    error = {
        "code": 400,
        "message": "the request exceeds the available context size, try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 9001,
        "n_ctx": 8192,
    }

    def answer(h: _Fake) -> None:
        h.start()
        h.token("Once", 1)
        h.event(f"error: {json.dumps(error)}\n\n" if old_style else f"data: {json.dumps({'error': error})}\n\n")
        h.end()

    script.append(answer)
    stream = backend.stream(REQUEST)
    assert next(stream).text == "Once"
    with pytest.raises(ContextOverflowError) as caught:
        next(stream)
    assert (caught.value.prompt_tokens, caught.value.context_window) == (9001, 8192)


def test_an_empty_answer_is_an_empty_completion_at_the_end(fake):
    backend, script, _, _ = fake

    def answer(h: _Fake) -> None:
        h.start()
        h.token(" ", 1)
        h.final(n=1, stop_type="eos")
        h.end()

    script.append(answer)
    stream = backend.stream(REQUEST)
    assert next(stream).text == " "
    with pytest.raises(EmptyCompletionError):
        next(stream)
