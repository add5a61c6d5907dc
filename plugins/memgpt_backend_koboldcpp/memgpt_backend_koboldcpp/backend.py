"""The KoboldCpp backend: ``POST /api/v1/generate`` with the fields KoboldCpp really reads.

Facts from KoboldCpp 1.76's server (koboldcpp.py, gpttype_adapter.cpp), each checked against the real server in this
package's tests:
- ``/api/v1/generate`` reads ``prompt``, ``max_length``, ``max_context_length``, ``stop_sequence`` (a list; a ``stop``
  key is ignored there, which is why MemGPT's stop strings never worked), ``grammar`` (GBNF),
  ``grammar_retain_state``, ``trim_stop``, ``ban_eos_token`` and sampler fields (``temperature``, ``top_p``,
  ``top_k``, ``rep_pen``, ``sampler_seed`` ...). It answers ``{"results": [{"text": ..., "finish_reason": ...}]}``,
  where ``finish_reason`` is ``"stop"`` only for an end-of-text token: a stop-sequence hit is reported as
  ``"length"``, like the token cap. So the backend asks for the stop string to be left in the text
  (``trim_stop: false``), cuts it off itself, and reports ``stop`` when it found one.
- ``POST /api/extra/tokencount`` ``{"prompt"}`` answers ``{"value": N, "ids": [...]}`` (N includes the BOS token);
  for 50000 tokens or more it answers ``{"value": 0, "ids": []}``, so a longer text is counted in pieces.
  ``GET /api/extra/true_max_context_length`` answers ``{"value": N}`` (the ``--contextsize``); ``GET /api/v1/model``
  answers ``{"result": "koboldcpp/NAME"}`` (``koboldcpp/protected-model`` without the password).
- ``--password`` protects the text endpoints, ``/api/extra/tokencount`` included (but not the context size, the
  model name or ``/api/extra/version``): they answer 401 ``{"detail": {"error": "Unauthorized", "msg":
  "Authentication key is missing or invalid.", "type": "unauthorized"}}`` without ``Authorization: Bearer PASSWORD``.
- One generation runs at a time. With the default ``--multiuser`` others queue (up to 6); beyond that, or with
  ``--multiuser 0``, a generation request answers 503 ``{"detail": {"msg": "Server is busy; please try again
  later.", "type": "service_unavailable"}}``. The lock is released 50 ms after an answer is sent, so with
  ``--multiuser 0`` even back-to-back requests of one client meet it: the backend waits and retries a busy server.
- A path it does not serve answers 404 (a GET with the text "Error: HTTP Server is running, but this endpoint does
  not exist. Please check the URL.", a POST with an empty body).
- KoboldCpp never refuses a long prompt: it keeps the end that fits ``max_context_length - max_length``, and it
  lowers a ``max_context_length`` above its ``--contextsize`` to that. So the backend counts first, against the
  smaller of the two, and raises ContextOverflowError itself. An invalid grammar is ignored with a console warning
  (the generation runs unconstrained), so ``memgpt doctor`` checks that constrained output really is constrained.
- Streaming: ``POST /api/extra/generate/stream`` takes the same body as ``/api/v1/generate`` and answers
  ``text/event-stream`` over HTTP/1.0 (no length, no chunks: the body ends when KoboldCpp closes the connection).
  A poller (every 20 ms, after 350 ms) sends what was generated since its last look as ``event: message`` /
  ``data: {"token": TEXT, "finish_reason": "null"}``, so one event may carry several tokens; once generation has
  ended, one more event carries the rest of the text (often empty) and the real ``finish_reason`` (``"length"`` or
  ``"stop"``, with the same meaning as above), then the connection closes. The backend reads to that close, and a
  stream that ends without a real finish reason was cut short. With ``trim_stop: false`` the stop string comes
  through the tokens like any text: the backend holds back what could be the start of one and yields nothing past
  it. A closed connection makes KoboldCpp abort the generation (a failed write ends its poller, which calls
  ``abort_generate``). Token counts and timings are not in the stream; ``/api/extra/perf`` has the last
  generation's, but it is global to the server (another client's generation may be the last), so neither
  ``complete`` nor ``stream`` reports them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from memgpt_core.backend import Backend, Capabilities, Delta
from memgpt_core.errors import (
    BackendHTTPError,
    BackendResponseError,
    EmptyCompletionError,
)
from memgpt_core.sampling import to_server

if TYPE_CHECKING:
    from memgpt_core.models import Completion, CompletionRequest

_T = TypeVar("_T")
_STREAM_PATH = "/api/extra/generate/stream"
_COUNT_LIMIT = 50000
"""KoboldCpp's tokencount answers 0 for a text of this many tokens or more."""


class KoboldCppBackend(Backend):
    """KoboldCpp's KoboldAI-compatible API (default port 5001)."""

    name: ClassVar[str] = "koboldcpp"
    default_endpoint: ClassVar[str] = "http://127.0.0.1:5001"
    capabilities: ClassVar[Capabilities] = Capabilities(
        grammar_formats=frozenset({"gbnf"}), exact_tokenizer=True, server_context=True, streaming=True
    )
    description: ClassVar[str] = "KoboldCpp (/api/v1/generate; GBNF grammars, exact token counts, real context)"
    busy_wait: float = 30.0
    """Seconds to keep retrying a generation that KoboldCpp refuses as busy, before the error is raised."""

    def __init__(self, endpoint: str | None = None, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        super().__init__(endpoint, api_key=api_key, timeout=timeout)
        self._server_context: int | None = None  # read once: the server's --contextsize (0: it does not say)

    def complete(self, request: CompletionRequest) -> Completion:
        body, prompt_tokens = self._generate_body(request)
        url = self.endpoint + "/api/v1/generate"
        answer = self._retry_busy(lambda: self.request("POST", "/api/v1/generate", body))
        try:
            result = answer["results"][0]
            text = result["text"]
        except (KeyError, IndexError, TypeError):
            raise BackendResponseError(
                f"KoboldCpp at {url} answered without results[0].text: {str(answer)[:200]}",
                url=url,
                fix="check that OPENAI_API_BASE points at KoboldCpp (default http://127.0.0.1:5001)",
            ) from None
        if not isinstance(text, str):
            raise BackendResponseError(
                f"KoboldCpp at {url} answered a results[0].text that is not text: {str(answer)[:200]}",
                url=url,
                fix="check that OPENAI_API_BASE points at KoboldCpp (default http://127.0.0.1:5001)",
            )
        return self._completion(text, result.get("finish_reason"), request.stop, prompt_tokens, url)

    def stream(self, request: CompletionRequest) -> Iterator[Delta]:
        """``POST /api/extra/generate/stream``: the body ``complete`` sends, the text yielded as KoboldCpp writes it.

        Each event is ``event: message`` with ``data: {"token": TEXT, "finish_reason": "null"}``; the last one names
        the real reason (``"length"`` or ``"stop"``), and KoboldCpp then closes the connection (see the module
        docstring), so the stream is read to its end. Text that may be the start of a stop string is held back
        until it is known not to be one, and nothing after a stop string is yielded.
        """
        body, prompt_tokens = self._generate_body(request)
        url = self.endpoint + _STREAM_PATH
        stream = self._retry_busy(lambda: self._open_stream(body))
        text, sent, cut, finish = "", 0, None, None
        try:
            for event in stream:
                token, finish = self._stream_event(event, url)
                if cut is not None:
                    continue  # past a stop string: KoboldCpp stops there too; read on to its last event
                text += token
                cut = _stop_at(text, request.stop)
                upto = cut if cut is not None else len(text) - _partial_stop(text, request.stop)
                if upto > sent:
                    yield Delta(text=text[sent:upto])
                    sent = upto
        finally:
            stream.close()
        if finish not in ("length", "stop"):
            raise BackendResponseError(
                f"KoboldCpp at {url} ended its stream without saying why it stopped (no event with a "
                f"finish_reason of length or stop) after {len(text)} characters: the answer was cut short",
                url=url,
                fix="KoboldCpp may have crashed or been stopped: look at its console, then try again",
            )
        rest = text[sent:] if cut is None else ""
        yield Delta(text=rest, completion=self._completion(text, finish, request.stop, prompt_tokens, url))

    def _generate_body(self, request: CompletionRequest) -> tuple[dict[str, Any], int | None]:
        """The generate body (``complete`` and ``stream`` send the same one), after the context check; with the
        prompt's token count when it was counted."""
        grammar = self.accepted_grammar(request)
        if self._server_context is None:
            self._server_context = self.context_window() or 0
        # KoboldCpp lowers a larger max_context_length to its own context, so count against the smaller one.
        windows = [w for w in (request.context_window, self._server_context) if w]
        window = min(windows) if windows else None
        prompt_tokens = self.check_prompt_fits(
            request,
            window=window,
            server="KoboldCpp",
            larger_context="start KoboldCpp with a larger --contextsize and raise --context-window to match",
        )
        # Sampling settings under KoboldCpp's names (rep_pen, sampler_seed ...: core's table, memgpt_core.sampling).
        body: dict[str, Any] = to_server(request.sampling, "koboldcpp")
        body.update(
            {
                "prompt": request.prompt,
                "max_length": request.max_tokens,
                "stop_sequence": list(request.stop),
                # Leave the stop string in the text: it is the only sign that one ended the answer (see above).
                "trim_stop": False,
            }
        )
        if window:
            body["max_context_length"] = window
        if request.ban_eos:
            body["ban_eos_token"] = True
        if grammar is not None:
            body["grammar"] = grammar.text
            # Each call is a fresh function call: grammar state carried over from the last one would reject it.
            body["grammar_retain_state"] = False
        return body, prompt_tokens

    def _completion(
        self, text: str, finish_reason: Any, stops: list[str], prompt_tokens: int | None, url: str
    ) -> Completion:
        """The Completion for KoboldCpp's whole text: cut at the first stop string (then ``stop``), else ``stop``
        only for KoboldCpp's own ``stop`` (the end-of-text token); an empty answer is an EmptyCompletionError."""
        from memgpt_core.models import Completion

        cut = _stop_at(text, stops)
        if cut is not None:
            text, finish = text[:cut], "stop"
        else:
            finish = "stop" if finish_reason == "stop" else "length"
        if not text:
            how = "a stop string" if cut is not None else "its end-of-text token"
            raise EmptyCompletionError(
                f"KoboldCpp at {url} returned an empty completion (the model ended its answer at once, with {how})",
                url=url,
                fix="check that the wrapper matches the model's prompt format and that no stop string matches the "
                "start of an answer (`memgpt doctor` checks both); KoboldCpp's console shows what it generated",
            )
        return Completion(text=text, finish_reason=finish, prompt_tokens=prompt_tokens)

    def _open_stream(self, body: dict[str, Any]) -> Iterator[Any]:
        """Send the streamed generate and wait for its first event, so that a refusal (busy, password) is raised
        here, where ``_retry_busy`` sees it; returns the events, the first one included."""
        from memgpt_core.sse import events

        stream = events(self.request_lines("POST", _STREAM_PATH, body))
        try:
            first = next(stream, None)
        except BaseException:
            stream.close()
            raise
        return _prepend(first, stream)

    def _stream_event(self, event: Any, url: str) -> tuple[str, str]:
        """The token and finish reason of one streamed event; anything else is a BackendResponseError."""
        try:
            data = json.loads(event.data)
        except ValueError:
            data = None
        if (
            event.event != "message"
            or not isinstance(data, dict)
            or not isinstance(data.get("token"), str)
            or not isinstance(data.get("finish_reason"), str)
        ):
            shown = " ".join(f"event: {event.event} data: {event.data}".split())[:200]
            raise BackendResponseError(
                f"KoboldCpp at {url} streamed an event that is not a message with a 'token' and a "
                f"'finish_reason': {shown!r}",
                url=url,
                fix="check that OPENAI_API_BASE points at KoboldCpp (default http://127.0.0.1:5001)",
            )
        return data["token"], data["finish_reason"]

    def count_tokens(self, text: str) -> int | None:
        count = self._count(text)
        if count is None or count > 0 or not text:
            return count
        # 0 for a non-empty text means "50000 tokens or more": count the halves and drop the extra BOS token.
        half = len(text) // 2
        first, second, overhead = self.count_tokens(text[:half]), self.count_tokens(text[half:]), self._count("")
        if first is None or second is None or overhead is None:
            return None
        return first + second - overhead

    def _count(self, text: str) -> int | None:
        body = self._request("POST", "/api/extra/tokencount", {"prompt": text}, timeout=min(self.timeout, 60.0))
        value = body.get("value") if isinstance(body, dict) else None
        return int(value) if isinstance(value, int) and value >= 0 else None

    def context_window(self) -> int | None:
        try:
            body = self._request("GET", "/api/extra/true_max_context_length", timeout=min(self.timeout, 30.0))
        except BackendHTTPError as exc:
            if exc.status == 404:  # a KoboldAI-compatible server that is not KoboldCpp
                return None
            raise
        value = body.get("value") if isinstance(body, dict) else None
        return int(value) if isinstance(value, int) and value > 0 else None

    def model_name(self) -> str | None:
        body = self._request("GET", "/api/v1/model", timeout=min(self.timeout, 30.0))
        name = body.get("result") if isinstance(body, dict) else None
        return str(name) if name else None

    # -- plumbing ----------------------------------------------------------------------------------------------------

    def _retry_busy(self, send: Callable[[], _T]) -> _T:
        """``send()`` (a generation request), retried while KoboldCpp answers busy, for up to ``busy_wait`` seconds;
        any other refusal, or busy for too long, is raised in KoboldCpp's words (``_translate``)."""
        deadline = time.monotonic() + self.busy_wait
        pause = 0.1
        while True:
            try:
                return send()
            except BackendHTTPError as exc:
                if not _is_busy(exc) or time.monotonic() + pause > deadline:
                    raise self._translate(exc) from None
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _request(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        try:
            return self.request(method, path, body, timeout=timeout)
        except BackendHTTPError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: BackendHTTPError) -> BackendHTTPError:
        """KoboldCpp's own words for a refused password and a busy server; other errors as core wrote them."""
        if exc.status == 401:
            fix = (
                "this KoboldCpp was started with --password: set MEMGPT_API_KEY (or --api-key) to that password"
                if not self.api_key
                else "the password was refused: set MEMGPT_API_KEY (or --api-key) to the --password KoboldCpp was "
                "started with"
            )
        elif _is_busy(exc):
            fix = (
                f"KoboldCpp runs one generation at a time and stayed busy for {self.busy_wait:g} s: wait for the "
                "other request to finish; a KoboldCpp started with --multiuser 0 refuses instead of queueing, so "
                "restart it without that flag"
            )
        else:
            return exc
        return BackendHTTPError(exc.message, url=exc.url, fix=fix, status=exc.status, body=exc.body)


def _is_busy(exc: BackendHTTPError) -> bool:
    """KoboldCpp's "Server is busy" answer (503 with the type ``service_unavailable``)."""
    if exc.status != 503:
        return False
    try:
        detail = json.loads(exc.body).get("detail")
    except (ValueError, AttributeError):
        return False
    return isinstance(detail, dict) and detail.get("type") == "service_unavailable"


def _partial_stop(text: str, stops: list[str]) -> int:
    """How many characters at the end of ``text`` could be the start of a stop string (0 when none could)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def _prepend(first: Any, rest: Generator[Any, None, None]) -> Generator[Any, None, None]:
    """``first`` (unless None) and then ``rest``; closing this closes ``rest``."""
    try:
        if first is not None:
            yield first
        yield from rest
    finally:
        rest.close()


def _stop_at(text: str, stops: list[str]) -> int | None:
    """Where the first stop string starts in ``text``, or None when there is none."""
    found = [at for stop in stops if stop and (at := text.find(stop)) != -1]
    return min(found) if found else None
