"""What an agent turn shows the person at the keyboard: a stream of typed events (also ``memgpt send --json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EVENT_TYPES = ("inner_thoughts", "function_call", "function_return", "assistant_message", "error", "status")
"""``status`` events (a summary happened, a cap was reached) are notes from the framework, not from the model."""

DELTA_TYPES = ("inner_thoughts_delta", "assistant_message_delta", "stream_reset")
"""What a streamed step shows while the model writes (only with a backend that streams, and only to ``on_event``;
a turn's result keeps the whole events above):

- ``inner_thoughts_delta`` / ``assistant_message_delta``: ``text`` is the next piece of the inner thoughts / of the
  message to the user, as read from the call the model is still writing. The pieces of one step, joined, are the
  ``text`` of the whole ``inner_thoughts`` / ``assistant_message`` event that follows when the call is read.
- ``stream_reset``: forget the pieces shown since the last whole event; ``text`` says why (the answer was unreadable
  and is sampled again, the server cut the stream). Nothing of that try is saved.
"""


@dataclass
class Event:
    type: str
    text: str | None = None
    name: str | None = None
    arguments: dict[str, Any] | None = None
    ok: bool | None = None
    raw: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        for key in ("text", "name", "arguments", "ok", "raw"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@dataclass
class StepInfo:
    """Numbers about one step, for benchmarks and ``--debug``."""

    function: str
    ok: bool
    arguments: dict[str, Any] | None
    heartbeat: str | None
    prompt_tokens_counted: int
    prompt_tokens_server: int | None = None
    prompt_tokens_evaluated: int | None = None
    attempts: int = 1
    model_seconds: float = 0.0
    truncated: bool = False


@dataclass
class TurnResult:
    """Everything one user message (or heartbeat) led to."""

    events: list[Event] = field(default_factory=list)
    steps: list[StepInfo] = field(default_factory=list)

    @property
    def replies(self) -> list[str]:
        return [e.text or "" for e in self.events if e.type == "assistant_message"]
