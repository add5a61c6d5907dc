"""How ``memgpt run`` and ``memgpt send`` show an agent's events to a person, streamed replies included.

A backend that streams leads the agent to emit delta events (``memgpt_core.agent.events.DELTA_TYPES``) while the
model writes: the pieces of the inner thoughts and of the message are printed as they come, on the line the whole
event would have used, and the whole event that follows adds only what the pieces did not show (normally just the line
end). Without delta events the output is exactly what it was before streaming existed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

import click

_STREAMED = {"inner_thoughts_delta": "inner_thoughts", "assistant_message_delta": "assistant_message"}
"""Each delta type and the whole event its pieces add up to."""


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Spinner:
    """A small spinner on stderr while the model works; silent when stderr is not a terminal.

    ``clear()`` stops the running spinner and wipes its line at once, for text that must not be drawn over (a reply
    printed while the model is still writing it); the spinner stays off until its busy block ends.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self.enabled = self.stream.isatty()
        self._stop: Callable[[], None] | None = None

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    @contextlib.contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        done = threading.Event()
        stream = self.stream

        def spin() -> None:
            for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
                stream.write(f"\r{frame} {label}…")
                stream.flush()
                if done.wait(0.1):
                    break
            stream.write("\r" + " " * (len(label) + 4) + "\r")
            stream.flush()

        thread = threading.Thread(target=spin, daemon=True)
        thread.start()

        def stop() -> None:
            done.set()
            thread.join()

        self._stop = stop
        try:
            yield
        finally:
            self._stop = None
            stop()

    def clear(self) -> None:
        """Stop the spinner of the current busy block (if one is drawing) and wipe its line before returning."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


class Printer:
    """Shows agent events for a person: thoughts dimmed, replies bold, one compact line per function call.

    Delta events are printed as they come: the first piece of a step's inner thoughts or message opens its line with
    the usual prefix, each later piece continues it, and the whole event ends it. A ``stream_reset`` ends the line and
    says in one dim line that the text above is withdrawn, and why. ``spinner`` (the one in ``busy``) is cleared before
    anything is printed, so it never draws over a reply being written.
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        replies_only: bool = False,
        spinner: Spinner | None = None,
        color: bool | None = None,
    ) -> None:
        self.debug = debug
        self.replies_only = replies_only
        self.spinner = spinner
        self.color = color  # None: click's rule (styles only on a terminal)
        self._shown: dict[str, str] = {}  # per kind: what its pieces showed since its last whole event
        self._open: str | None = None  # the kind whose line is being written, if any

    # -- the two kinds that stream ------------------------------------------------------------------------------

    def _shows(self, kind: str) -> bool:
        return kind == "assistant_message" or not self.replies_only or self.debug

    def _opening(self, kind: str) -> str:
        if kind == "inner_thoughts":
            return click.style("  (", dim=True, italic=True)
        return "" if self.replies_only else click.style("agent: ", fg="cyan", bold=True)

    def _piece(self, kind: str, text: str) -> str:
        return click.style(text, dim=True, italic=True) if kind == "inner_thoughts" else text

    def _closing(self, kind: str) -> str:
        return click.style(")", dim=True, italic=True) if kind == "inner_thoughts" else ""

    def _whole(self, kind: str, text: str) -> str:
        """The line a whole event prints when nothing of it was streamed (the format from before streaming)."""
        if kind == "inner_thoughts":
            return click.style(f"  ({text})", dim=True, italic=True)
        return self._opening(kind) + text

    def _write(self, text: str, *, nl: bool = False, err: bool = False) -> None:
        if self.spinner is not None:
            self.spinner.clear()
        click.echo(text, nl=nl, err=err, color=self.color)  # click.echo flushes after every call

    def end_line(self) -> None:
        """Finish the line a streamed piece left open (before anything else is printed)."""
        kind, self._open = self._open, None
        if kind is not None:
            self._write(self._closing(kind), nl=True)

    def _delta(self, kind: str, text: str) -> None:
        if not text or not self._shows(kind):
            return
        if self._open != kind:
            self.end_line()
            self._open = kind
            self._write(self._opening(kind))
        self._write(self._piece(kind, text))
        self._shown[kind] = self._shown.get(kind, "") + text

    def _complete(self, kind: str, text: str) -> None:
        """A whole event of a kind that may have been streamed: print only what its pieces did not show."""
        shown = self._shown.pop(kind, None)
        if shown is not None and self._open == kind and text.startswith(shown):
            self._open = None
            rest = text[len(shown) :]
            self._write((self._piece(kind, rest) if rest else "") + self._closing(kind), nl=True)
            return
        if shown is not None and self._open != kind and text == shown:
            return  # shown whole already, and its line was ended by the other kind's first piece
        self.end_line()
        self._write(self._whole(kind, text), nl=True)

    def _reset(self, reason: str) -> None:
        shown = any(self._shown.values())
        self.end_line()
        self._shown.clear()
        if shown:
            self._write(click.style(f"  [the text above is withdrawn: {reason}]", dim=True), nl=True)

    # -- every event ---------------------------------------------------------------------------------------------

    def __call__(self, event: Any) -> None:
        kind = event.type
        if kind in _STREAMED:
            self._delta(_STREAMED[kind], event.text or "")
            return
        if kind == "stream_reset":
            self._reset(event.text or "")
            return
        if kind == "assistant_message":
            self._complete(kind, event.text or "")
            return
        if self.replies_only and not self.debug:
            if kind == "error":
                self.end_line()
                self._write(click.style(f"error: {event.text}", fg="red"), nl=True, err=True)
            return
        if kind == "inner_thoughts":
            self._complete(kind, event.text or "")
            return
        if kind == "function_call" and event.name == "send_message" and not self.debug:
            return
        if kind not in ("function_call", "function_return", "status", "error"):
            return
        self.end_line()
        if kind == "function_call":
            args = {k: v for k, v in (event.arguments or {}).items()}
            if self.debug:
                shown = json.dumps(args, ensure_ascii=False, indent=2)
            else:
                shown = ", ".join(f"{k}={_short(v, 40)}" for k, v in args.items())
            self._write(click.style(f"  ⚡ {event.name}({shown})", fg="yellow"), nl=True)
        elif kind == "function_return":
            full = event.text or ""
            text = full if self.debug else "ok" if event.ok else _short(full, 100)
            self._write(click.style(f"    → {text}", fg="yellow" if event.ok else "red", dim=bool(event.ok)), nl=True)
        elif kind == "status":
            self._write(click.style(f"  [{event.text}]", fg="magenta", dim=True), nl=True)
        else:
            self._write(click.style(f"error: {event.text}", fg="red"), nl=True, err=True)
