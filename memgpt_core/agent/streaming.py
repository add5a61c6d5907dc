"""One call's text, generated: forced text appended instead of sampled, and the call shown while it is written.

Where the grammar leaves exactly one continuation (the opening of every call; on a reply-only step, everything up to
the inner thoughts; once the model has picked a function, the text up to its first free value), that text is added to
the prompt rather than generated. Each generated token is a whole decoding step; the same text in the prompt costs a
few prompt tokens, which the server's prompt cache mostly already holds.

- Before the request, the grammar's forced opening is computed (``memgpt_core.forcing``) and appended.
- With a backend that streams, the text is read as it grows. When what the model wrote so far leaves a forced run of
  at least ``MIN_JUMP`` characters (in practice: it has written enough of a function name to pick one function),
  the stream is closed and a new request continues from the prompt, the text so far and that run. At most
  ``MAX_JUMPS`` per call.
- With a backend that streams, the inner thoughts and the message to the user are shown as they are written
  (``inner_thoughts_delta`` and ``assistant_message_delta`` events).

The result is one ``Completion`` whose ``text`` is the whole call (forced and generated text), so parsing, storing and
writing it back into later prompts work as for a call generated in one piece.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from memgpt_core import forcing
from memgpt_core.agent.events import Event
from memgpt_core.agent.requests import ask, ask_streaming

if TYPE_CHECKING:
    from memgpt_core.backend import Backend
    from memgpt_core.models import Completion, CompletionRequest

MIN_JUMP = 16
"""The shortest forced run worth a new request mid-call. A new request took a median 0.33 s before its first token
on SmolLM2 here (the cancelled generation ends, the prompt is read again from where the server's cached tokens and
the re-sent text part, then the first token; measured through the benchmark proxy, docs/benchmarks.md); under a
grammar the model writes JSON punctuation and keys in one- and two-character tokens, so a run of 16 characters or
more (the rest of a function name and the opening of its params, 33 characters or more) saves more than that, and
the 15 characters of ``", "message": "`` after the inner thoughts do not."""
MAX_JUMPS = 2
NAME_CHARS = 32
"""The longest function name looked for: the grammar is followed after every piece until the text is this long."""


@functools.lru_cache(maxsize=64)
def forced_opening(grammar_text: str) -> forcing.Forced | None:
    """The text every call the GBNF grammar admits starts with, and the grammar of the rest; None when nothing is
    forced or the grammar cannot be read for it (then the call is generated whole, as before)."""
    try:
        result = forcing.forced_prefix(grammar_text)
    except Exception:  # a grammar the analysis does not cover is sent as it is: forcing is only an optimisation
        return None
    return result if result.text else None


@functools.lru_cache(maxsize=256)
def forced_after(grammar_text: str, written: str) -> forcing.Forced | None:
    """The forced run after ``written`` (text the model wrote under ``grammar_text``), with the grammar of the rest:
    its ``text`` is '' when the grammar leaves a choice there. None when the grammar cannot be followed exactly
    through ``written`` (it ran into a free value), which stays so for any longer text."""
    try:
        rest = forcing.advance(grammar_text, written)
        return None if rest is None else forcing.forced_prefix(rest)
    except Exception:
        return None


class PartialCall:
    """Reads the call the model is still writing and emits the new text of its inner thoughts and of its message.

    It reads calls written as MemGPT's JSON, ``{"function": ..., "params": {"inner_thoughts": ..., "message": ...}}``
    (pydantic-core's partial JSON mode reads the unfinished object); text in another layout shows nothing until the
    call is whole, as without streaming.
    """

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit
        self.text = ""
        self.thoughts = ""
        self.message = ""

    @property
    def shown(self) -> bool:
        return bool(self.thoughts or self.message)

    def feed(self, piece: str) -> None:
        self.text += piece
        start = self.text.find("{")
        if start < 0:
            return
        from pydantic_core import from_json

        try:
            data = from_json(self.text[start:], allow_partial="trailing-strings")
        except ValueError:  # not JSON (yet, or at all): nothing to show
            return
        params = data.get("params") if isinstance(data, dict) else None
        if not isinstance(params, dict):
            return
        self.thoughts = self._grow(self.thoughts, params.get("inner_thoughts"), "inner_thoughts_delta")
        if data.get("function") == "send_message":
            self.message = self._grow(self.message, params.get("message"), "assistant_message_delta")

    def _grow(self, shown: str, now: object, kind: str) -> str:
        if not isinstance(now, str) or len(now) <= len(shown) or not now.startswith(shown):
            return shown
        self.emit(Event(kind, text=now[len(shown) :]))
        return now

    def reset(self, reason: str) -> None:
        """Forget this try: what was shown is withdrawn (``stream_reset``) when anything was."""
        if self.shown:
            self.emit(Event("stream_reset", text=reason))
        self.text = self.thoughts = self.message = ""


def generate(
    backend: Backend,
    request: CompletionRequest,
    *,
    forcing: bool = True,
    stream: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> tuple[Completion, PartialCall | None]:
    """One call's completion for ``request``: forced text appended (when ``forcing`` and the grammar is GBNF), and
    streamed when the backend streams, with the partial call shown through ``on_event``.

    Returns the completion of the whole call (its ``text`` includes the forced text; its counts add up every request
    that finished) and the reader that showed it (None when nothing was streamed), which the caller resets when the
    call turns out unreadable.
    """
    from memgpt_core.models import Completion, Grammar, Timings

    grammar = request.grammar
    written = ""
    opening = forced_opening(grammar.text) if forcing and grammar is not None and grammar.format == "gbnf" else None
    if opening is not None and grammar is not None:
        written = opening.text
        grammar = Grammar(format="gbnf", text=opening.grammar, provider=grammar.provider)
    streaming = stream and backend.capabilities.streaming
    reader = PartialCall(on_event) if streaming and on_event is not None else None
    if reader is not None and written:
        reader.feed(written)
    try:
        finished: list[Completion] = []
        generated_pieces = 0
        jumps = 0
        while True:
            budget = max(1, request.max_tokens - sum(c.completion_tokens or 0 for c in finished) - generated_pieces)
            this = request.model_copy(
                update={"prompt": request.prompt + written, "grammar": grammar, "max_tokens": budget}
            )
            if not streaming:
                finished.append(ask(backend, this))
                break
            can_jump = forcing and grammar is not None and grammar.format == "gbnf" and jumps < MAX_JUMPS
            text = ""
            count = 0
            jump: forcing.Forced | None = None
            pieces = ask_streaming(backend, this)
            try:
                for delta in pieces:
                    if delta.completion is not None:
                        if reader is not None and delta.text:
                            reader.feed(delta.text)
                        finished.append(delta.completion)
                        break
                    text += delta.text
                    count += 1
                    if reader is not None and delta.text:
                        reader.feed(delta.text)
                    # Following the grammar costs a few milliseconds, so it is done where a forced run can begin:
                    # while a function name can be being written (the first NAME_CHARS), and where a string closes.
                    if can_jump and grammar is not None and ('"' in delta.text or len(text) <= NAME_CHARS):
                        jump = forced_after(grammar.text, text)
                        if jump is not None and len(jump.text) >= MIN_JUMP:
                            break
                        # A text the grammar cannot be followed through stays so however it goes on.
                        can_jump = jump is not None
                        jump = None
            finally:
                pieces.close()
            if jump is None or grammar is None:
                break
            # The rest of this call is forced for a while: continue from the prompt, what was written, and the run.
            jumps += 1
            # A stream closed before its final piece tells no count; the servers that stream send a piece per token.
            generated_pieces += count
            written += text + jump.text
            grammar = Grammar(format="gbnf", text=jump.grammar, provider=grammar.provider)
            if reader is not None:
                reader.feed(jump.text)
    except BaseException as exc:
        if reader is not None:
            reader.reset(f"the answer stopped: {(str(exc).splitlines() or [type(exc).__name__])[0]}")
        raise
    last = finished[-1]
    if not written:
        return last, reader
    timed = [c.timings for c in finished if c.timings is not None]
    timings = None
    if timed:
        timings = Timings(
            prompt_n=_total(t.prompt_n for t in timed),
            prompt_ms=_total(t.prompt_ms for t in timed),
            predicted_n=_total(t.predicted_n for t in timed),
            predicted_ms=_total(t.predicted_ms for t in timed),
            cache_n=timed[0].cache_n,
        )
    whole = Completion(
        text=written + last.text,
        finish_reason=last.finish_reason,
        prompt_tokens=finished[0].prompt_tokens,
        # A stream closed at a jump reports no count: its pieces stand for its tokens (a piece per token, as the
        # streaming servers send them).
        completion_tokens=_total([*(c.completion_tokens for c in finished), generated_pieces or None]),
        timings=timings,
        model=last.model,
    )
    return whole, reader


def _total(values: object) -> int | float | None:
    items = [v for v in values if v is not None]  # type: ignore[attr-defined]
    return sum(items) if items else None
