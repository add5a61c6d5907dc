"""Server-sent events: the lines of a ``text/event-stream`` body (``memgpt_core.http.stream_lines``) read as events.

The rules are the WHATWG HTML standard's ("Server-sent events", parsing an event stream), the parts a completion
stream uses:

- a line that starts with ``:`` is a comment, and is skipped (servers send them as keep-alives);
- ``field: value`` sets a field, one space after the colon being dropped; a line without a colon is a field with an
  empty value; ``data`` lines add to the event's data, joined by LF; ``event`` sets its type (``message`` when no
  line sets it); ``id``, ``retry`` and unknown fields are ignored (nothing here reconnects);
- a blank line dispatches the event, unless no ``data`` line came (then the lines since the last blank line are
  dropped, their ``event`` included);
- at the end of the stream, an event not yet ended by a blank line is dropped, as the standard says ("If the file
  ends in the middle of an event, before the final empty line, the incomplete event is not dispatched"). A server
  whose last event is cut off that way has cut its answer short, and the backend reading the events says so.

A byte order mark at the very start is skipped. Line endings (CRLF, LF, CR) are already taken off by the line reader.

One departure, only when asked for (``lone_fields``): some servers write a field the standard does not know as an
event of its own. llama.cpp's server before its OpenAI-style rewrite wrote a failure in the middle of a stream as one
``error: {json}`` line and a blank line, which the standard would drop as an unknown field.
``events(lines, lone_fields=("error",))`` yields such a line at once as ``SSEEvent("error", value)``.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its type (``message`` unless the server named one) and its data lines joined by LF."""

    event: str
    data: str


def events(lines: Iterable[str], *, lone_fields: Collection[str] = ()) -> Iterator[SSEEvent]:
    """Read ``lines`` (without line endings) as server-sent events, yielding each one as its blank line arrives.

    ``lone_fields``: field names outside the standard that the server writes as whole events (see above); each such
    line is yielded at once, as an event of that name, without touching the event being read.

    When this iterator is closed early and ``lines`` is a generator (``stream_lines``), ``lines`` is closed too, so
    the HTTP response is released at once.
    """
    data: list[str] = []
    event = ""
    first = True
    try:
        for line in lines:
            if first:
                first = False
                line = line.removeprefix("\ufeff")
            if not line:
                if data:
                    yield SSEEvent(event=event or "message", data="\n".join(data))
                data, event = [], ""
                continue
            if line.startswith(":"):
                continue
            field, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
            elif field in lone_fields:
                yield SSEEvent(event=field, data=value)
    finally:
        if isinstance(lines, Generator):
            lines.close()
