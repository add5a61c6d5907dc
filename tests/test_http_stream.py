"""Streamed HTTP bodies (``memgpt_core.http.stream_lines``) and server-sent events (``memgpt_core.sse``), against a
real HTTP server in a thread that writes bodies byte by byte the way a test needs: in chunks with pauses, cut off,
stalled, as an error, as garbage."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from memgpt_core.errors import (
    BackendHTTPError,
    BackendResponseError,
    BackendTimeoutError,
    BackendUnavailableError,
)
from memgpt_core.http import request_json, stream_lines
from memgpt_core.sse import SSEEvent, events

Script = Callable[["_Handler"], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    scripts: ClassVar[dict[str, Script]] = {}
    requests_seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def _run(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.requests_seen.append((self.command, self.path, body))
        self.scripts[self.path](self)

    do_GET = do_POST = _run

    def start_chunked(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


class _Server:
    """A local HTTP server whose paths run scripts; ``release`` lets a script that waits go on (or give up)."""

    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.seen: list[tuple[str, str, bytes]] = []
        self.release = threading.Event()
        handler = type("Handler", (_Handler,), {"scripts": self.scripts, "requests_seen": self.seen})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str) -> Callable[[Script], Script]:
        def register(script: Script) -> Script:
            self.scripts[path] = script
            return script

        return register

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    try:
        yield running
    finally:
        running.close()


def _lines(server: _Server, path: str, **kwargs: object) -> Iterator[str]:
    return stream_lines("POST", server.url + path, backend="test", json={"prompt": "hi"}, timeout=5, **kwargs)


# -- lines as the server writes them ------------------------------------------------------------------------------


def test_lines_arrive_while_the_server_is_still_writing(server: _Server) -> None:
    @server.on("/stream")
    def _(h: _Handler) -> None:
        h.start_chunked()
        h.chunk(b"first line\n")
        # The rest only after the test has read the first line: a reader that waited for the whole body would hang.
        if not server.release.wait(10):
            return
        h.chunk(b"second line\n")
        h.end_chunks()

    lines = _lines(server, "/stream")
    assert next(lines) == "first line"
    server.release.set()
    assert list(lines) == ["second line"]
    assert server.seen == [("POST", "/stream", b'{"prompt": "hi"}')]


def test_line_endings_and_characters_split_across_chunks_are_joined(server: _Server) -> None:
    snowman = "☃".encode()

    @server.on("/split")
    def _(h: _Handler) -> None:
        h.start_chunked()
        # CRLF split between chunks, a three-byte character split between chunks, a lone CR, an LF.
        for piece in (b"one\r", b"\ntw", b"o " + snowman[:1], snowman[1:] + b"\rthree\n", b"\nlast without end"):
            h.chunk(piece)
            time.sleep(0.02)
        h.end_chunks()

    assert list(_lines(server, "/split")) == ["one", "two ☃", "three", "", "last without end"]


def test_a_body_with_a_content_length_and_crlf_lines(server: _Server) -> None:
    @server.on("/plain")
    def _(h: _Handler) -> None:
        body = b'{"a": 1}\r\n{"b": 2}\r\n'
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    assert [json.loads(line) for line in _lines(server, "/plain")] == [{"a": 1}, {"b": 2}]


def test_bytes_that_are_not_utf8_become_replacement_characters(server: _Server) -> None:
    @server.on("/latin1")
    def _(h: _Handler) -> None:
        h.start_chunked()
        h.chunk("café\n".encode("latin-1"))
        h.end_chunks()

    assert list(_lines(server, "/latin1")) == ["caf\ufffd"]


def test_the_api_key_is_sent_as_a_bearer_token(server: _Server) -> None:
    headers: list[str | None] = []

    @server.on("/key")
    def _(h: _Handler) -> None:
        headers.append(h.headers.get("Authorization"))
        h.start_chunked()
        h.end_chunks()

    assert list(_lines(server, "/key", api_key="sk-local")) == []
    assert headers == ["Bearer sk-local"]


# -- failures -------------------------------------------------------------------------------------------------------


def test_a_connection_dropped_mid_body_is_a_stream_cut_short(server: _Server) -> None:
    @server.on("/drop")
    def _(h: _Handler) -> None:
        h.start_chunked()
        h.chunk(b"data: one\n")
        h.wfile.write(b"40\r\npartial")  # promises 64 bytes, sends 7, hangs up
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)

    lines = _lines(server, "/drop")
    assert next(lines) == "data: one"
    with pytest.raises(BackendResponseError) as caught:
        list(lines)
    message = str(caught.value)
    assert f"{server.url}/drop closed the stream before the answer was complete" in message
    assert caught.value.fix and "log" in caught.value.fix
    assert caught.value.url == f"{server.url}/drop"


def test_fewer_bytes_than_the_content_length_is_a_stream_cut_short(server: _Server) -> None:
    @server.on("/short")
    def _(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"only this\n")
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)

    lines = _lines(server, "/short")
    assert next(lines) == "only this"
    with pytest.raises(BackendResponseError, match="closed the stream before the answer was complete"):
        next(lines)


def test_broken_chunk_framing_is_a_stream_cut_short(server: _Server) -> None:
    @server.on("/garbage")
    def _(h: _Handler) -> None:
        h.start_chunked()
        h.chunk(b"fine\n")
        h.wfile.write(b"this is no chunk size\r\n\x00\xff\xfe garbage\r\n")
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)

    lines = _lines(server, "/garbage")
    assert next(lines) == "fine"
    with pytest.raises(BackendResponseError, match="closed the stream before the answer was complete"):
        next(lines)


def test_a_server_silent_before_answering_times_out(server: _Server) -> None:
    @server.on("/slow")
    def _(h: _Handler) -> None:
        server.release.wait(10)

    began = time.monotonic()
    with pytest.raises(BackendTimeoutError) as caught:
        list(stream_lines("POST", server.url + "/slow", backend="test", json={}, timeout=0.5))
    assert time.monotonic() - began < 5
    assert f"the test server at {server.url}/slow did not answer within 0.5 s" in str(caught.value)
    assert "MEMGPT_TIMEOUT" in (caught.value.fix or "")


def test_a_server_that_goes_quiet_mid_stream_times_out(server: _Server) -> None:
    @server.on("/stall")
    def _(h: _Handler) -> None:
        h.start_chunked()
        h.chunk(b"data: one\n\n")
        server.release.wait(10)

    lines = stream_lines("POST", server.url + "/stall", backend="test", json={}, timeout=0.5)
    assert next(lines) == "data: one"
    began = time.monotonic()
    with pytest.raises(BackendTimeoutError) as caught:
        list(lines)
    assert 0.4 < time.monotonic() - began < 5
    assert "stopped sending for 0.5 s in the middle of its answer" in str(caught.value)


def test_an_error_status_reads_the_body_like_request_json(server: _Server) -> None:
    error = {"error": {"code": 500, "message": "the model exploded", "type": "server_error"}}

    @server.on("/fail")
    def _(h: _Handler) -> None:
        body = json.dumps(error).encode()
        h.send_response(500)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with pytest.raises(BackendHTTPError) as streamed:
        list(_lines(server, "/fail"))
    with pytest.raises(BackendHTTPError) as plain:
        request_json("POST", server.url + "/fail", backend="test", json={"prompt": "hi"}, timeout=5)
    assert streamed.value.status == plain.value.status == 500
    assert json.loads(streamed.value.body) == error
    assert streamed.value.body == plain.value.body
    assert str(streamed.value) == str(plain.value)
    assert "the model exploded" in str(streamed.value)


def test_an_error_status_with_a_streamed_body_is_read_whole(server: _Server) -> None:
    @server.on("/fail-chunked")
    def _(h: _Handler) -> None:
        h.send_response(400)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.chunk(b'{"error": ')
        time.sleep(0.05)
        h.chunk(b'"bad grammar"}')
        h.end_chunks()

    with pytest.raises(BackendHTTPError) as caught:
        list(_lines(server, "/fail-chunked"))
    assert caught.value.status == 400
    assert json.loads(caught.value.body) == {"error": "bad grammar"}


def test_nothing_listening_is_named_like_request_json_names_it() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/completion"
    with pytest.raises(BackendUnavailableError) as streamed:
        list(stream_lines("POST", url, backend="test", json={}, timeout=5))
    with pytest.raises(BackendUnavailableError) as plain:
        request_json("POST", url, backend="test", json={}, timeout=5)
    assert str(streamed.value) == str(plain.value)
    assert f"nothing is answering at {url} (connection refused)" in str(streamed.value)


def test_an_unknown_host_is_named_like_request_json_names_it() -> None:
    url = "http://memgpt-test.invalid:9/completion"
    with pytest.raises(BackendUnavailableError) as caught:
        list(stream_lines("POST", url, backend="test", json={}, timeout=5))
    assert "the host 'memgpt-test.invalid'" in str(caught.value)


def test_closing_the_iterator_early_closes_the_connection(server: _Server) -> None:
    writes_failed = threading.Event()

    @server.on("/endless")
    def _(h: _Handler) -> None:
        h.start_chunked()
        try:
            for n in range(1000):
                h.chunk(b"line %d\n" % n)
                time.sleep(0.01)
        except OSError:  # the client hung up: a broken pipe or a reset
            writes_failed.set()

    lines = _lines(server, "/endless")
    assert [next(lines) for _ in range(3)] == ["line 0", "line 1", "line 2"]
    lines.close()
    assert writes_failed.wait(5), "the server could still write after the reader closed its iterator"


def test_nothing_is_sent_before_the_first_line_is_asked_for(server: _Server) -> None:
    @server.on("/lazy")
    def _(h: _Handler) -> None:
        h.start_chunked()
        h.end_chunks()

    lines = _lines(server, "/lazy")
    time.sleep(0.1)
    assert server.seen == []
    assert list(lines) == []
    assert len(server.seen) == 1


# -- server-sent events ---------------------------------------------------------------------------------------------


def test_data_lines_are_joined_and_a_blank_line_dispatches() -> None:
    read = list(events(["data: one", "data:two", "data:  three", "", "data: next", ""]))
    assert read == [SSEEvent("message", "one\ntwo\n three"), SSEEvent("message", "next")]


def test_event_names_comments_and_other_fields() -> None:
    lines = [
        ": keep-alive",
        "event: message",
        "id: 7",
        "retry: 1000",
        "data: {}",
        "",
        "event: error",
        "data",
        "",
        "event: ignored without data",
        "",
        "data: typed again?",
        "",
    ]
    assert list(events(lines)) == [
        SSEEvent("message", "{}"),
        SSEEvent("error", ""),
        SSEEvent("message", "typed again?"),
    ]


def test_an_event_without_its_blank_line_at_the_end_is_not_dispatched() -> None:
    assert list(events(["data: whole", "", "data: cut"])) == [SSEEvent("message", "whole")]


def test_a_byte_order_mark_at_the_start_is_skipped() -> None:
    assert list(events(["\ufeffdata: x", ""])) == [SSEEvent("message", "x")]


def test_a_colon_in_the_value_is_kept() -> None:
    assert list(events(['data: {"a": "b:c"}', ""])) == [SSEEvent("message", '{"a": "b:c"}')]


def test_events_over_a_real_stream_and_closing_them_closes_the_connection(server: _Server) -> None:
    writes_failed = threading.Event()

    @server.on("/events")
    def _(h: _Handler) -> None:
        h.start_chunked()
        try:
            h.chunk(b": ping\r\n\r\nevent: message\r\nda")
            h.chunk(b'ta: {"token": "Hel"}\r\n\r\ndata: {"token": "lo"}\r\n\r\n')
            for _ in range(500):
                h.chunk(b": ping\r\n\r\n")
                time.sleep(0.01)
        except OSError:
            writes_failed.set()

    stream = events(_lines(server, "/events"))
    assert next(stream) == SSEEvent("message", '{"token": "Hel"}')
    assert next(stream) == SSEEvent("message", '{"token": "lo"}')
    stream.close()
    assert writes_failed.wait(5), "closing the events did not close the HTTP response"


def test_a_lone_field_is_an_event_only_when_asked_for() -> None:
    lines = ["data: one", "", 'error: {"code": 500}', "", "data: two", ""]
    assert list(events(lines)) == [SSEEvent("message", "one"), SSEEvent("message", "two")]
    assert list(events(lines, lone_fields=("error",))) == [
        SSEEvent("message", "one"),
        SSEEvent("error", '{"code": 500}'),
        SSEEvent("message", "two"),
    ]
