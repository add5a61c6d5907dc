"""Reading the answer of an OpenAI-compatible completion endpoint, for backends whose server speaks that shape.

``/v1/completions`` answers ``{"choices": [{"text", "finish_reason"}], "usage": {...}, "model": ...}``;
``/v1/chat/completions`` has ``choices[0].message.content`` instead of ``text``. Servers built on llama.cpp add a
``timings`` object, which llama-server's native ``/completion`` answer carries too.

Light at import time (pydantic is imported when a Completion is built), so a backend module may import it at the top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memgpt_core.errors import BackendResponseError

if TYPE_CHECKING:
    from memgpt_core.models import Completion, Timings

_COUNTS = ("prompt_n", "predicted_n", "cache_n")
_MILLISECONDS = ("prompt_ms", "predicted_ms")


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


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
