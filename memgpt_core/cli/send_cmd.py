"""``memgpt send``: send one message to an agent and print its replies (``--json``: one event per line; ``--stream``:
the reply as it is written, and with ``--json`` the delta events too)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from memgpt_core.cli.printer import Printer
from memgpt_core.cli.run_cmd import agent_options, progress_line, session_options


@click.command()
@agent_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per event (type, text, name, ...).")
@click.option(
    "--stream",
    is_flag=True,
    help="Show the reply as the model writes it (with --json: the delta events too, one line each as they come).",
)
@click.argument("message")
def send(message: str, as_json: bool, stream: bool, **kwargs: Any) -> None:
    """Send one message to an agent and print its replies (the agent is created if it does not exist)."""
    from memgpt_core.agent.session import open_session
    from memgpt_core.errors import MemGPTError

    if not kwargs.get("agent"):
        raise click.UsageError("memgpt send needs --agent NAME (see `memgpt agents list`)")

    from memgpt_core.agent.events import DELTA_TYPES

    def emit_json(event: Any) -> None:
        sys.stdout.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()

    printer = Printer(debug=kwargs["debug"], replies_only=True)
    show = emit_json if as_json else printer

    def on_event(event: Any) -> None:
        # The agent streams whenever its backend can; without --stream the pieces are dropped here and the output is
        # the whole events alone, as from a backend that does not stream.
        if stream or event.type not in DELTA_TYPES:
            show(event)

    try:
        with open_session(
            session_options(kwargs), on_event=on_event, progress=None if as_json else progress_line
        ) as session:
            if session.created and not as_json:
                click.echo(click.style(f"created agent {session.agent.record.name}", dim=True), err=True)
            if not as_json:
                for note in session.notes:
                    click.echo(click.style(note, fg="yellow"), err=True)
            session.agent.user_message(message)
    except MemGPTError as exc:
        if not as_json:
            printer.end_line()
            raise
        error: dict[str, Any] = {"type": "error", "text": str(exc), "error": type(exc).__name__}
        raw = getattr(exc, "raw", None)
        if raw is not None:
            error["raw"] = raw
        emit_json_line = json.dumps(error, ensure_ascii=False)
        sys.stdout.write(emit_json_line + "\n")
        sys.stdout.flush()
        raise SystemExit(1) from None
