"""The OpenAI-compatible request and answer, written once for every backend whose server speaks that shape.

``/v1/completions`` takes ``{"prompt", "max_tokens", "stop", "stream", ...}`` and answers
``{"choices": [{"text", "finish_reason"}], "usage": {...}, "model": ...}``; ``/v1/chat/completions`` takes
``messages`` and has ``choices[0].message.content`` instead of ``text``. Servers built on llama.cpp add a ``timings``
object, which llama-server's native ``/completion`` answer carries too. ``GET /v1/models`` lists what is served as
``{"data": [{"id", "owned_by", ...}]}``. Errors come in several shapes, all read by :func:`read_error`.

The webui, lmstudio, openai and vllm backends build their requests with :func:`completion_body` and read every answer
here; none keeps a copy of its own. Light at import time (pydantic is imported when a Completion is built), so a
backend module may import it at the top.

Streaming (:func:`stream_body`, :func:`read_stream`): with ``"stream": true`` the answer is a ``text/event-stream``
of ``data: {chunk}`` events, a chunk being the answer's shape with the new text only (``choices[0].text``, or
``choices[0].delta.content`` on the chat route), ``finish_reason`` set on the last choice, then ``data: [DONE]``.
``"stream_options": {"include_usage": true}`` (OpenAI, vLLM, llama.cpp, LM Studio 0.3.18 and later,
text-generation-webui since March 2026) asks for ``usage``: llama.cpp puts it, with ``timings``, in the chunk that
carries the finish reason (completions) or in a chunk of its own with empty ``choices`` (chat); vLLM, LM Studio and
webui in a chunk of its own. What each server does when it fails after the answer has begun:

- vLLM (``serving_completion.py``): ``data: {"error": {...}}`` (the error object of its version), then ``[DONE]``.
- llama.cpp: current servers (``server-context.cpp``) send ``data: {"error": {"code", "message", "type"}}`` and
  end the stream; older ones wrote the error as a non-standard ``error: {...}`` line (which an SSE reader must
  ignore) before ``data: [DONE]``, so that line is read here as an ``error`` event.
- LM Studio: ``data: {"error": ...}`` (a text or an object).
- text-generation-webui (``modules/api/script.py``, sse-starlette): no error event; the connection ends. It sends
  ``[DONE]`` only since March 2026, so its stream is whole once a finish reason came.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memgpt_core.errors import BackendError, BackendResponseError

if TYPE_CHECKING:
    from memgpt_core.backend import Delta
    from memgpt_core.models import Completion, CompletionRequest, Timings

_COUNTS = ("prompt_n", "predicted_n", "cache_n")
_MILLISECONDS = ("prompt_ms", "predicted_ms")
OWN_FIELDS = frozenset({"prompt", "messages", "max_tokens", "stop", "stream", "model"})
"""The fields :func:`completion_body` sets from the request itself; a sampling setting never replaces them."""


def completion_body(
    request: CompletionRequest, *, dialect: str = "openai", chat: bool = False, model: str | None = None
) -> dict[str, Any]:
    """The body of one OpenAI-style completion for ``request``.

    The sampling settings come first: ``request.sampling`` under ``dialect``'s names (see
    :func:`memgpt_core.sampling.to_server`), without the fields in OWN_FIELDS. Then ``prompt``, ``max_tokens``,
    ``stop`` (only when there are stop strings), ``stream: false`` and ``model`` when one is given. With ``chat`` the
    prompt goes to ``/v1/chat/completions`` as the one user message (``messages``), the way MemGPT sent a finished
    prompt to a chat endpoint. A backend adds its server's own fields (a grammar, a context length) to the dict it
    gets back.
    """
    from memgpt_core.sampling import to_server

    sampling = to_server(request.sampling, dialect)
    body: dict[str, Any] = {key: value for key, value in sampling.items() if key not in OWN_FIELDS}
    if chat:
        body["messages"] = [{"role": "user", "content": request.prompt}]
    else:
        body["prompt"] = request.prompt
    body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop"] = list(request.stop)
    body["stream"] = False
    if model:
        body["model"] = model
    return body


def read_completion(
    answer: Any, url: str, *, server: str, fix: str | None = None, prompt_tokens: int | None = None
) -> Completion:
    """Turn an OpenAI-style completion answer into a Completion: ``choices[0]``, ``usage``, ``model`` and timings.

    The text is ``choices[0].text`` (completions) or ``choices[0].message.content`` (chat completions), ``""`` when
    the server sent none: each backend decides what an empty answer means on its server, so check ``text`` yourself.
    ``finish_reason`` is ``"length"`` when the server says so and ``"stop"`` otherwise. ``prompt_tokens`` is the
    backend's own count, used when ``usage`` has none.

    An answer without a first choice raises BackendResponseError naming ``server`` (as the message's subject, for
    example "LM Studio"), ``url`` and ``fix`` (by default: check the URL and BACKEND_TYPE).
    """
    try:
        choice = answer["choices"][0]
        text = choice["text"] if "text" in choice else choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise BackendResponseError(
            f"{server} at {url} answered without a completion (choices[0].text or choices[0].message.content): "
            f"{str(answer)[:200]}",
            url=url,
            fix=fix or _check_url(server),
        ) from None
    return _completion(
        text if isinstance(text, str) else "",
        finish_reason=choice.get("finish_reason"),
        usage=answer.get("usage"),
        timings=read_timings(answer),
        model=answer.get("model"),
        prompt_tokens=prompt_tokens,
    )


def _completion(
    text: str, *, finish_reason: Any, usage: Any, timings: Timings | None, model: Any, prompt_tokens: int | None
) -> Completion:
    """The Completion of an answer, read whole or from a stream: one place for the finish reason and the counts."""
    from memgpt_core.models import Completion

    usage = usage if isinstance(usage, dict) else {}
    reported_prompt = _count(usage.get("prompt_tokens"))
    return Completion(
        text=text,
        finish_reason="length" if finish_reason == "length" else "stop",
        prompt_tokens=reported_prompt if reported_prompt is not None else prompt_tokens,
        completion_tokens=_count(usage.get("completion_tokens")),
        timings=timings,
        model=str(model) if model else None,
    )


def _check_url(server: str) -> str:
    return f"check that OPENAI_API_BASE (or --endpoint) points at {server} and BACKEND_TYPE names its kind"


def read_timings(answer: Any) -> Timings | None:
    """The server's ``timings`` object (``prompt_n``, ``prompt_ms``, ``predicted_n``, ``predicted_ms``, ``cache_n``)
    as Timings, or None when the answer has none. A value of the wrong type is left out, never an error."""
    reported = answer.get("timings") if isinstance(answer, dict) else None
    if not isinstance(reported, dict) or not reported:
        return None
    from memgpt_core.models import Timings

    known: dict[str, Any] = {key: _count(reported.get(key)) for key in _COUNTS}
    known.update({key: _number(reported.get(key)) for key in _MILLISECONDS})
    return Timings(**known)


@dataclass(frozen=True)
class ServerError:
    """What an error body says, read by :func:`read_error`."""

    message: str
    """The server's own sentence; for a body that is not JSON, its text on one line (cut at 300 characters)."""
    type: str = ""
    """``error.type`` where the server gives one (``invalid_request_error``, ``NotFoundError``,
    ``exceed_context_size_error`` ...)."""
    param: str = ""
    code: str = ""
    """``error.code`` as text (``"model_not_found"``, ``"400"``), or ``""``."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """The whole error object, for numbers only one server sends (llama.cpp's ``n_prompt_tokens`` and ``n_ctx``)."""
    is_json: bool = False
    """Whether the body was JSON at all (an HTML error page from a proxy is not)."""

    def mentions(self, *words: str) -> bool:
        """Whether the message, type, param or code contains any of ``words`` (case-insensitive)."""
        text = " ".join((self.message, self.type, self.param, self.code)).lower()
        return any(word.lower() in text for word in words)


def read_error(body: str | Mapping[str, Any] | None) -> ServerError:
    """Read an error body in any of the shapes OpenAI-compatible servers send.

    ``{"error": {"message", "type", "param", "code"}}`` (OpenAI, llama.cpp, vLLM 0.10.1 and later, LM Studio,
    text-generation-webui), ``{"error": "text"}`` (LM Studio, vLLM's 401), ``{"object": "error", "message", "type",
    "code"}`` (vLLM before 0.10.1, SGLang), ``{"detail": "text"}`` or FastAPI's ``{"detail": [{"msg"}]}``, and any
    other text (an HTML page), shown on one line. Never raises.
    """
    if body is None:
        return ServerError(message="")
    data: Any = body
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            return ServerError(message=_one_line(body))
    if not isinstance(data, Mapping):
        return ServerError(message=_one_line(json.dumps(data)), is_json=True)
    error = data.get("error")
    if isinstance(error, Mapping):
        return _from_object(error)
    if isinstance(error, str) and error:
        return ServerError(message=error, is_json=True)
    if isinstance(data.get("message"), str):  # the flat shape: the error object is the body itself
        return _from_object(data)
    detail = data.get("detail")
    if isinstance(detail, str):
        return ServerError(message=detail, is_json=True)
    if isinstance(detail, list):
        said = "; ".join(str(item.get("msg")) for item in detail if isinstance(item, Mapping) and item.get("msg"))
        if said:
            return ServerError(message=said, is_json=True)
    return ServerError(message=_one_line(json.dumps(data)), is_json=True)


@dataclass(frozen=True)
class ServedModel:
    """One entry of ``GET /v1/models``."""

    id: str
    owned_by: str = ""
    max_model_len: int | None = None
    """The context length vLLM (and SGLang) report for the model; None where the server says nothing."""
    card: Mapping[str, Any] = field(default_factory=dict)
    """The whole entry, for fields only one server sends (llama.cpp's ``meta.n_ctx``)."""


def read_models(answer: Any) -> list[ServedModel] | None:
    """The models of a ``GET /v1/models`` answer (``{"object": "list", "data": [{"id", ...}]}``), in the server's
    order; None when the answer is not that list (the server has no such route, or answered something else)."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, list):
        return None
    served = []
    for card in data:
        if isinstance(card, Mapping) and isinstance(card.get("id"), str) and card["id"]:
            owner = card.get("owned_by")
            served.append(
                ServedModel(
                    id=card["id"],
                    owned_by=owner if isinstance(owner, str) else "",
                    max_model_len=_count(card.get("max_model_len")),
                    card=card,
                )
            )
    return served


def stream_body(body: Mapping[str, Any], *, include_usage: bool) -> dict[str, Any]:
    """``body`` (from :func:`completion_body`, with the backend's own fields) as a streamed request: ``"stream":
    true``, and with ``include_usage`` the ``stream_options`` that ask for the token counts at the end (send it only
    to a server known to accept it: an unknown field may be refused)."""
    streamed = dict(body)
    streamed["stream"] = True
    if include_usage:
        streamed["stream_options"] = {"include_usage": True}
    return streamed


StreamErrorReader = Callable[[ServerError], BackendError]
"""Turns the error a server sent in the middle of a stream (read by :func:`read_error`) into the BackendError to
raise: an overflow as ContextOverflowError, and so on, as the backend reads the same error in an HTTP answer."""


def read_stream(
    lines: Iterable[str],
    url: str,
    *,
    server: str,
    fix: str | None = None,
    on_error: StreamErrorReader | None = None,
    prompt_tokens: int | None = None,
    needs_done: bool = True,
) -> Iterator[Delta]:
    """Read an OpenAI-style completion stream (``lines`` from :func:`memgpt_core.http.stream_lines`) as Deltas: one
    per piece of text, then the last one carrying the Completion, built exactly as :func:`read_completion` builds
    it from a whole answer (finish reason, ``usage``, ``timings``, ``model``; ``prompt_tokens`` when ``usage`` has
    none). An empty whole text is left to the backend to judge, as with :func:`read_completion`.

    Raises, naming ``server`` and ``url``:

    - the error ``on_error`` makes of an error the server sent mid-stream (by default BackendResponseError with the
      server's sentence);
    - BackendResponseError for a stream that ends before a finish reason (or, with ``needs_done``, before
      ``[DONE]``), and for an event that is not a JSON chunk with ``choices``, with ``fix`` (by default: check the
      URL and BACKEND_TYPE).

    A server that ignored ``"stream": true`` and answered one JSON completion is read as one piece. Closing the
    iterator closes ``lines``, and so the HTTP response.
    """
    from memgpt_core.backend import Delta
    from memgpt_core.sse import events

    fix = fix or _check_url(server)
    tap = _Tap(lines)
    stream = events(iter(tap))  # a generator, so that closing the events closes the lines
    pieces: list[str] = []
    finish_reason: Any = None
    usage: Any = None
    timings: Timings | None = None
    model: Any = None
    done = seen = False
    try:
        for event in stream:
            seen = True
            if event.event == "error":
                raise _stream_error(read_error(event.data), url, server, on_error)
            if event.data.strip() == "[DONE]":
                done = True
                break
            chunk = _chunk(event.data, url, server, fix)
            if chunk.get("error"):
                raise _stream_error(read_error(chunk), url, server, on_error)
            choices = chunk.get("choices")
            if not isinstance(choices, list):
                raise _not_a_chunk(event.data, "without a 'choices' list", url, server, fix)
            model = chunk.get("model") or model
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            timings = read_timings(chunk) or timings
            if not choices:  # the usage chunk
                continue
            text, reason = _choice(choices[0], event.data, url, server, fix)
            if text:
                pieces.append(text)
                yield Delta(text=text)
            finish_reason = reason or finish_reason
        if not seen and tap.other:
            yield _whole_answer(tap.text(), url, server, fix, on_error, prompt_tokens)
            return
        if finish_reason is None or (needs_done and not done):
            missing = "a finish reason" if finish_reason is None else "its closing [DONE]"
            raise BackendResponseError(
                f"{server} at {url} ended its streamed answer before {missing}, after {len(''.join(pieces))} "
                "characters: the answer was cut short",
                url=url,
                fix="the server may have stopped or crashed mid-answer: look at its log, then try again",
            )
    finally:
        stream.close()
    completion = _completion(
        "".join(pieces),
        finish_reason=finish_reason,
        usage=usage,
        timings=timings,
        model=model,
        prompt_tokens=prompt_tokens,
    )
    yield Delta(text="", completion=completion)


class _Tap:
    """The stream's lines, passed on to the SSE reader, with two things noted on the way: older llama.cpp servers'
    ``error: {...}`` line, rewritten as the ``error`` event it means, and the start of any line that is no SSE field
    (a server that answered plain JSON, or an HTML page)."""

    _FIELDS = ("data", "event", "id", "retry")

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines
        self.other: list[str] = []
        self._kept = 0

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self.lines:
                name = line.partition(":")[0]
                if name == "error":
                    yield "event: error"
                    yield "data:" + line[len("error:") :]
                    continue
                if line and not line.startswith(":") and name not in self._FIELDS and self._kept < 100_000:
                    self.other.append(line)
                    self._kept += len(line)
                yield line
        finally:
            close = getattr(self.lines, "close", None)
            if close is not None:
                close()

    def text(self) -> str:
        return "\n".join(self.other)


def _chunk(data: str, url: str, server: str, fix: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise _not_a_chunk(data, "that is not JSON", url, server, fix) from None
    if not isinstance(chunk, dict):
        raise _not_a_chunk(data, "that is not a JSON object", url, server, fix)
    return chunk


def _choice(choice: Any, data: str, url: str, server: str, fix: str) -> tuple[str, Any]:
    """The text and finish reason of one streamed choice: ``text`` (completions) or ``delta.content`` (chat)."""
    if not isinstance(choice, dict):
        raise _not_a_chunk(data, "whose choice is not an object", url, server, fix)
    if "text" in choice:
        text = choice["text"]
    else:
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
    if text is not None and not isinstance(text, str):
        raise _not_a_chunk(data, "whose text is not a string", url, server, fix)
    return text or "", choice.get("finish_reason")


def _not_a_chunk(data: str, what: str, url: str, server: str, fix: str) -> BackendResponseError:
    return BackendResponseError(
        f"{server} at {url} streamed a piece {what}, where a completion chunk belongs: {_one_line(data, 200)}",
        url=url,
        fix=fix,
    )


def _stream_error(said: ServerError, url: str, server: str, on_error: StreamErrorReader | None) -> BackendError:
    if on_error is not None:
        return on_error(said)
    return BackendResponseError(
        f"{server} at {url} reported an error in the middle of its answer: {said.message or 'no message'}",
        url=url,
        fix="look at the server's own log for the cause, then try again",
    )


def _whole_answer(
    text: str,
    url: str,
    server: str,
    fix: str,
    on_error: StreamErrorReader | None,
    prompt_tokens: int | None,
) -> Delta:
    """The body of a server that answered a streamed request without events: a whole JSON completion is taken as
    one piece; an error object is that error; anything else (an HTML page) is not this API."""
    from memgpt_core.backend import Delta

    try:
        answer = json.loads(text)
    except ValueError:
        what = "an HTML page" if text.lstrip()[:1] == "<" else "text that is neither events nor JSON"
        raise BackendResponseError(
            f"{server} at {url} answered a streamed request with {what}: {_one_line(text, 200)}",
            url=url,
            fix=fix,
        ) from None
    if isinstance(answer, dict) and answer.get("error"):
        raise _stream_error(read_error(answer), url, server, on_error)
    completion = read_completion(answer, url, server=server, fix=fix, prompt_tokens=prompt_tokens)
    return Delta(text=completion.text, completion=completion)


def _from_object(error: Mapping[str, Any]) -> ServerError:
    message = error.get("message")
    code = error.get("code")
    return ServerError(
        message=message if isinstance(message, str) else _one_line(json.dumps(error)),
        type=str(error.get("type") or ""),
        param=str(error.get("param") or ""),
        code="" if code is None else str(code),
        fields=dict(error),
        is_json=True,
    )


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
