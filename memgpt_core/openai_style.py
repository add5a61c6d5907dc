"""The OpenAI-compatible request and answer, written once for every backend whose server speaks that shape.

``/v1/completions`` takes ``{"prompt", "max_tokens", "stop", "stream", ...}`` and answers
``{"choices": [{"text", "finish_reason"}], "usage": {...}, "model": ...}``; ``/v1/chat/completions`` takes
``messages`` and has ``choices[0].message.content`` instead of ``text``. Servers built on llama.cpp add a ``timings``
object, which llama-server's native ``/completion`` answer carries too. ``GET /v1/models`` lists what is served as
``{"data": [{"id", "owned_by", ...}]}``. Errors come in several shapes, all read by :func:`read_error`.

The webui, lmstudio, openai and vllm backends build their requests with :func:`completion_body` and read every answer
here; none keeps a copy of its own. Light at import time (pydantic is imported when a Completion is built), so a
backend module may import it at the top.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memgpt_core.errors import BackendResponseError

if TYPE_CHECKING:
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
    from memgpt_core.models import Completion

    try:
        choice = answer["choices"][0]
        text = choice["text"] if "text" in choice else choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise BackendResponseError(
            f"{server} at {url} answered without a completion (choices[0].text or choices[0].message.content): "
            f"{str(answer)[:200]}",
            url=url,
            fix=fix or f"check that OPENAI_API_BASE (or --endpoint) points at {server} and BACKEND_TYPE names its kind",
        ) from None
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    reported_prompt = _count(usage.get("prompt_tokens"))
    model = answer.get("model")
    return Completion(
        text=text if isinstance(text, str) else "",
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        prompt_tokens=reported_prompt if reported_prompt is not None else prompt_tokens,
        completion_tokens=_count(usage.get("completion_tokens")),
        timings=read_timings(answer),
        model=str(model) if model else None,
    )


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
