"""A loopback HTTP proxy in front of llama-server that records what the server did for each completion request.

Both agents under test (the original MemGPT and ours) talk to the proxy instead of the server, so the figures come
from the same place for both: ``timings.prompt_n`` (prompt tokens the server actually evaluated, i.e. not served
from its prompt cache), ``tokens_cached``, ``timings.predicted_n``, the request's ``n_predict``, how the generation
stopped, the HTTP status, and the wall time. Records are kept in memory and served as JSON on
``GET /__proxy/records?since=N``, so a driver in another process (another virtualenv) can mark turn boundaries.

Only the standard library is used, so the file runs under any interpreter (``python proxy.py --upstream URL``).
One safety valve: a single upstream request longer than ``--request-timeout`` seconds is cut (the socket is closed,
which makes llama-server cancel the generation) and answered 504; each cut is recorded with ``"cut": true``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers must not be forwarded; the body is re-sent whole, so the length is recomputed too.
_SKIP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}


class Recorder:
    """Thread-safe list of per-request records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, object]] = []

    def add(self, record: dict[str, object]) -> None:
        with self._lock:
            record["i"] = len(self._records)
            self._records.append(record)

    def since(self, index: int) -> list[dict[str, object]]:
        with self._lock:
            return list(self._records[index:])

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


def _summarise_body(path: str, body: bytes, content_type: str) -> dict[str, object]:
    """Pull timings and stop reason out of a /completion (or OpenAI-style) answer, plain JSON or SSE."""
    out: dict[str, object] = {}
    text = body.decode("utf-8", "replace")
    candidates: list[dict[str, object]] = []
    if "text/event-stream" in content_type or text.startswith("data:"):
        for line in text.splitlines():
            if line.startswith("data:"):
                chunk = line[5:].strip()
                if chunk and chunk != "[DONE]":
                    with contextlib.suppress(ValueError):
                        candidates.append(json.loads(chunk))
    else:
        try:
            candidates.append(json.loads(text))
        except ValueError:
            return out
    chunks = [c for c in candidates if isinstance(c, dict)]
    final = next((c for c in reversed(chunks) if "timings" in c), chunks[-1] if chunks else {})
    timings = final.get("timings") or {}
    if isinstance(timings, dict):
        out["prompt_n"] = timings.get("prompt_n")
        out["predicted_n"] = timings.get("predicted_n")
        out["prompt_ms"] = timings.get("prompt_ms")
        out["predicted_ms"] = timings.get("predicted_ms")
    for key in (
        "tokens_cached",
        "tokens_evaluated",
        "stop_type",
        "stopped_limit",
        "stopped_eos",
        "stopped_word",
        "truncated",
    ):
        if key in final:
            out[key] = final[key]
    if "error" in final:
        err = final["error"]
        out["error"] = err.get("type") or err.get("message") if isinstance(err, dict) else str(err)
    return out


def _slot_progress(host: str, port: int) -> dict[str, object]:
    """What a busy slot has done so far: prompt tokens and tokens decoded (llama-server's ``GET /slots``)."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/slots")
        slots = json.loads(conn.getresponse().read())
        conn.close()
    except (OSError, ValueError):
        return {}
    for slot in slots if isinstance(slots, list) else []:
        if isinstance(slot, dict) and slot.get("is_processing"):
            nxt = slot.get("next_token") or [{}]
            nxt = nxt[0] if isinstance(nxt, list) and nxt else nxt
            return {
                "cut_prompt_tokens": slot.get("n_prompt_tokens"),
                "cut_decoded": nxt.get("n_decoded") if isinstance(nxt, dict) else None,
            }
    return {}


def make_handler(upstream: str, recorder: Recorder, request_timeout: float) -> type[BaseHTTPRequestHandler]:
    parsed = urllib.parse.urlsplit(upstream)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the records are the log

        def _control(self) -> bool:
            if not self.path.startswith("/__proxy/"):
                return False
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            since = int(query.get("since", ["0"])[0])
            if self.path.startswith("/__proxy/count"):
                payload: object = {"count": len(recorder)}
            else:
                payload = recorder.since(since)
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return True

        def _forward(self) -> None:
            if self._control():
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_HEADERS}
            record: dict[str, object] = {"method": self.command, "path": self.path, "t0": time.time()}
            if body and self.command == "POST":
                try:
                    req = json.loads(body)
                    if isinstance(req, dict):
                        record["n_predict"] = req.get("n_predict", req.get("max_tokens"))
                        record["has_grammar"] = bool(req.get("grammar") or req.get("json_schema"))
                        record["cache_prompt"] = req.get("cache_prompt")
                        record["stream"] = bool(req.get("stream"))
                        prompt = req.get("prompt")
                        if isinstance(prompt, str):
                            record["prompt_chars"] = len(prompt)
                except ValueError:
                    pass
            started = time.monotonic()
            conn = http.client.HTTPConnection(host, port, timeout=request_timeout)
            try:
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                status, content_type = resp.status, resp.getheader("Content-Type", "")
                resp_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _SKIP_HEADERS]
                if "text/event-stream" in content_type or "ndjson" in content_type:
                    # A stream is passed on piece by piece, so the client sees it as the server writes it; a client
                    # that closes early makes the proxy close the upstream socket, which cancels the generation.
                    data, left = self._relay(resp, status, resp_headers)
                    record["first_byte_s"] = round(self._first_byte - started, 3) if self._first_byte else None
                    if left:
                        record["client_closed"] = True
                        record["streamed_pieces"] = data.count(b"\ndata:") + data.startswith(b"data:")
                    record.update(status=status, seconds=round(time.monotonic() - started, 3), stream=True)
                    record.update(_summarise_body(self.path, data, content_type))
                    if left and record.get("predicted_n") is None:
                        record["predicted_n"] = record["streamed_pieces"]
                    recorder.add(record)
                    return
                data = resp.read()
            except TimeoutError:
                # Before cutting, ask the server how far the generation got (prompt size, tokens generated so far).
                record.update(_slot_progress(host, port))
                # Closing the socket makes llama-server cancel the task, so the slot is free for the next request.
                conn.close()
                record.update(status=504, cut=True, seconds=round(time.monotonic() - started, 3))
                if self.path != "/health":
                    recorder.add(record)
                msg = json.dumps({"error": {"type": "proxy_timeout", "message": "cut by the benchmark proxy"}})
                self._reply(504, [("Content-Type", "application/json")], msg.encode())
                return
            except OSError as exc:
                conn.close()
                record.update(status=502, error=f"upstream: {exc}", seconds=round(time.monotonic() - started, 3))
                recorder.add(record)
                self._reply(502, [("Content-Type", "text/plain")], str(exc).encode())
                return
            finally:
                conn.close()
            record["status"] = status
            record["seconds"] = round(time.monotonic() - started, 3)
            if self.command == "POST":
                record.update(_summarise_body(self.path, data, content_type))
            # Health and property polls are not completions; keep the records to what the model did.
            if self.command == "POST" or status >= 400:
                recorder.add(record)
            self._reply(status, resp_headers, data)

        _first_byte: float | None = None

        def _relay(
            self, resp: http.client.HTTPResponse, status: int, headers: list[tuple[str, str]]
        ) -> tuple[bytes, bool]:
            """Pass a streamed answer on as it comes, chunked; return what came and whether the client left early."""
            self._first_byte = None
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            seen = bytearray()
            while True:
                piece = resp.read1(65536)
                if not piece:
                    break
                if self._first_byte is None:
                    self._first_byte = time.monotonic()
                seen += piece
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                except OSError:
                    return bytes(seen), True
            with contextlib.suppress(OSError):
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            return bytes(seen), False

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            try:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client went away; nothing to tell it

        do_GET = _forward
        do_POST = _forward
        do_PUT = _forward
        do_DELETE = _forward
        do_OPTIONS = _forward

    return Handler


class Proxy:
    """The proxy on a free 127.0.0.1 port, served from a daemon thread; ``url`` is what the agents are pointed at."""

    def __init__(self, upstream: str, *, port: int = 0, request_timeout: float = 120.0) -> None:
        self.recorder = Recorder()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(upstream, self.recorder, request_timeout))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Proxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the llama-server base URL")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--request-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    proxy = Proxy(args.upstream, port=args.port, request_timeout=args.request_timeout).start()
    print(proxy.url, flush=True)
    try:
        proxy.thread.join()
    except KeyboardInterrupt:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
