"""``memgpt run``: chat with a MemGPT agent. Also the flags ``memgpt send`` shares (the event printer: ``printer``)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from memgpt_core import sampling
from memgpt_core.cli.printer import Printer, Spinner

HISTORY_FILE = "run_history"
"""``memgpt run``'s input history, one file per MEMGPT_HOME."""
HISTORY_LINES = 1000

HELP = """\
/help            this list
/exit            leave (the agent is saved after every step)
/memory          show core memory and the recall/archival counts
/dump [n]        show the last n messages of the context (default 10)
/pop [n]         undo: remove the last n messages (default 3)
/retry           answer the last user message again
/rethink TEXT    replace the agent's last inner thoughts
/rewrite TEXT    replace the agent's last message to you
/summarize       summarise older messages now
/heartbeat       let the agent take another step on its own"""


def agent_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The flags `memgpt run` and `memgpt send` share, with MemGPT's own spellings accepted as aliases."""
    options = [
        click.option("--agent", "agent", metavar="NAME", help="The agent to resume (a new one is made if absent)."),
        click.option("--persona", metavar="NAME|FILE", help="Persona for a new agent: a file or a saved name."),
        click.option("--human", metavar="NAME|FILE", help="What a new agent knows about you: a file or a name."),
        click.option(
            "--model", "--model-wrapper", "wrapper", metavar="WRAPPER", help="Prompt wrapper (for example chatml)."
        ),
        click.option(
            "--backend", "--model-endpoint-type", "backend", metavar="TYPE", help="Backend type; or BACKEND_TYPE."
        ),
        click.option(
            "--endpoint", "--model-endpoint", "endpoint", metavar="URL", help="Server base URL; or OPENAI_API_BASE."
        ),
        click.option(
            "--model-name",
            metavar="NAME",
            help="The model the server should use, for servers with several (Ollama, vLLM); or MEMGPT_MODEL_NAME.",
        ),
        click.option("--api-key", envvar="MEMGPT_API_KEY", help="Key for a server that needs one."),
        click.option("--context-window", type=click.IntRange(min=256), help="Context size to budget for, in tokens."),
        click.option("--model-path", type=click.Path(dir_okay=False), help="A GGUF file for the embedded server."),
        click.option("--max-tokens", type=click.IntRange(min=16), help="Output cap per step (default 512)."),
        click.option("--debug", is_flag=True, help="Show every function call and result in full."),
        click.option(
            "--no-stream",
            "no_stream",
            is_flag=True,
            help="Ask the server for whole answers, not the text as it is written.",
        ),
        *sampling_options(),
    ]
    for option in reversed(options):
        func = option(func)
    return func


_FLAG_ALIASES = {"repeat_penalty": ("--repetition-penalty",)}


def sampling_options() -> list[Callable[[Any], Any]]:
    """One flag per sampling setting (``--temperature``, ``--top-k`` ...), from the one table in core."""
    options = []
    for setting in sampling.SETTINGS:
        if setting.kind is int:
            kind: click.ParamType = click.IntRange(min=setting.minimum, max=setting.maximum)  # type: ignore[arg-type]
        else:
            kind = click.FloatRange(min=setting.minimum, max=setting.maximum)
        flags = (setting.flag, *_FLAG_ALIASES.get(setting.name, ()))
        options.append(click.option(*flags, setting.name, type=kind, help=setting.help))
    return options


def sampling_flags(kwargs: dict[str, Any]) -> dict[str, float | int]:
    """The sampling settings given as flags, by canonical name."""
    return {s.name: kwargs[s.name] for s in sampling.SETTINGS if kwargs.get(s.name) is not None}


def session_options(kwargs: dict[str, Any], *, create: bool = True) -> Any:
    from memgpt_core.agent.session import SessionOptions

    return SessionOptions(
        agent=kwargs.get("agent"),
        persona=kwargs.get("persona"),
        human=kwargs.get("human"),
        wrapper=kwargs.get("wrapper"),
        backend=kwargs.get("backend"),
        endpoint=kwargs.get("endpoint"),
        api_key=kwargs.get("api_key"),
        context_window=kwargs.get("context_window"),
        model_path=kwargs.get("model_path"),
        max_tokens=kwargs.get("max_tokens"),
        model_name=kwargs.get("model_name"),
        sampling=sampling_flags(kwargs),
        stream=not kwargs.get("no_stream"),
        create=create,
    )


def progress_line(message: str) -> None:
    click.echo(click.style(message, dim=True), err=True)


@click.command()
@agent_options
@click.option("--first", is_flag=True, help="You speak first (no greeting from a new agent).")
def run(first: bool, **kwargs: Any) -> None:
    """Chat with a MemGPT agent (starts an embedded llama.cpp server when no backend is configured)."""
    from memgpt_core.agent.session import open_session

    spinner = Spinner()
    printer = Printer(debug=kwargs["debug"], spinner=spinner)
    try:
        with open_session(session_options(kwargs), on_event=printer, busy=spinner, progress=progress_line) as session:
            agent = session.agent
            state = "new agent" if session.created else "resuming agent"
            click.echo(click.style(f"{state} {agent.record.name}", bold=True), err=True)
            where = session.server_description or f"{agent.backend.name} at {agent.backend.endpoint}"
            click.echo(
                click.style(f"wrapper {agent.wrapper_name}, {where}, context {agent.window} tokens", dim=True),
                err=True,
            )
            if session.settings is not None:
                click.echo(click.style(_settings_line(session.settings), dim=True), err=True)
            if agent.grammar_note:
                click.echo(click.style(agent.grammar_note, fg="yellow"), err=True)
            for note in session.notes:
                click.echo(click.style(note, fg="yellow"), err=True)
            click.echo(click.style("type /help for commands, /exit to leave", dim=True), err=True)
            if session.created and not first:
                _guarded(agent.login, printer)
            with line_editing() as prompt:
                _chat(agent, printer, prompt)
    except KeyboardInterrupt:
        # Every context manager above has run by now: the lock is released and the embedded server stopped.
        click.echo("\nbye (the agent is saved)", err=True)


def _guarded(action: Callable[[], Any], printer: Printer) -> Any:
    """Run one turn; a failure is shown as a sentence and the chat goes on."""
    from memgpt_core.errors import MemGPTError

    try:
        return action()
    except MemGPTError as exc:
        printer.end_line()
        click.echo(click.style(f"error: {exc}", fg="red"), err=True)
        return None


def _settings_line(settings: Any) -> str:
    """Where the server came from (when not a flag) and the sampling settings with theirs, on one line."""
    parts = []
    source = settings.source("backend") if "backend" in settings.origin else None
    if source and settings.origin.get("backend") != "flag":
        parts.append(f"server from {source}")
    from memgpt_core.agent.defaults import DEFAULT_SAMPLING

    values = settings.sampling
    shown = [
        f"{sampling.describe({name: value})} ({settings.origin.get(f'sampling.{name}')})"
        for name, value in values.items()
    ]
    # The agent's measured defaults go under every request the user's settings leave them in (where the server has
    # them), so the line names them too rather than claiming the server's defaults alone.
    defaults = {name: value for name, value in DEFAULT_SAMPLING.items() if name not in values}
    if defaults:
        shown.append(f"{sampling.describe(defaults)} (memgpt's default)")
    parts.append("sampling: " + (", ".join(shown) if shown else "the server's defaults"))
    return "; ".join(parts)


@contextlib.contextmanager
def line_editing() -> Iterator[str]:
    """Line editing and a history for the chat prompt, with GNU readline (or libedit) where this Python has it.

    The history is ``$MEMGPT_HOME/run_history`` (private to the user), appended a line at a time so a killed session
    keeps what was typed, and trimmed to its last ``HISTORY_LINES`` lines at start. Yields the prompt to show:
    readline counts every character of a prompt as a column unless escape sequences are marked, so the colours are
    wrapped in its \\001/\\002 markers. Without a terminal, nothing is set up and the prompt is empty.
    """
    plain = click.style("you: ", fg="green", bold=True)
    if not sys.stdin.isatty():
        yield ""
        return
    try:
        import readline
    except ImportError:  # Windows without pyreadline, or a Python built without it
        yield plain
        return
    from memgpt_core.storage import memgpt_home

    path = memgpt_home() / HISTORY_FILE
    _load_history(readline, path)
    yield _marked(plain)


def _load_history(readline: Any, path: Path) -> None:
    readline.clear_history()
    with contextlib.suppress(OSError):
        readline.read_history_file(str(path))
    if readline.get_current_history_length() > 2 * HISTORY_LINES:  # trim now and then, not on every start
        readline.set_history_length(HISTORY_LINES)
        with contextlib.suppress(OSError):
            readline.write_history_file(str(path))
    readline.set_history_length(-1)


def remember_line(line: str) -> None:
    """Append the line just typed to the history file (readline already holds it in memory)."""
    try:
        import readline
    except ImportError:
        return
    from memgpt_core.storage import memgpt_home

    path = memgpt_home() / HISTORY_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # what you typed is yours alone
        readline.append_history_file(1, str(path))
    except (OSError, AttributeError):  # a read-only home, or a libedit without append_history_file
        pass


def _marked(prompt: str) -> str:
    """``prompt`` with each ANSI escape sequence between readline's ignore markers."""
    import re

    return re.sub(r"(\x1b\[[0-9;]*m)", "\x01\\1\x02", prompt)


def _chat(agent: Any, printer: Printer, prompt: str = "") -> None:
    while True:
        try:
            line = input(prompt)
        except EOFError:
            click.echo("", err=True)
            return
        text = line.strip()
        if not text:
            continue
        if prompt:
            remember_line(line)
        if not text.startswith("/"):
            _guarded(lambda text=text: agent.user_message(text), printer)
            continue
        command, _, rest = text.partition(" ")
        rest = rest.strip()
        if command in ("/exit", "/quit"):
            return
        if command == "/help":
            click.echo(HELP)
        elif command == "/memory":
            click.echo(agent.memory_text())
        elif command == "/dump":
            for message in agent.dump(_count(rest, 10)):
                body = message.get("content") or ""
                if message.get("function_call"):
                    body += f" {json.dumps(message['function_call'], ensure_ascii=False)}"
                click.echo(click.style(f"[{message['role']}] ", bold=True) + body)
        elif command == "/pop":
            click.echo(f"removed {agent.pop(_count(rest, 3))} messages")
        elif command == "/retry":
            _guarded(agent.retry, printer)
        elif command == "/rethink" and rest:
            _guarded(lambda rest=rest: agent.rethink(rest), printer)
        elif command == "/rewrite" and rest:
            _guarded(lambda rest=rest: agent.rewrite(rest), printer)
        elif command == "/summarize":
            done = _guarded(agent.summarize, printer)
            if done is False:
                click.echo("nothing old enough to summarise yet")
        elif command == "/heartbeat":
            _guarded(agent.heartbeat, printer)
        else:
            click.echo(f"unknown command {command} (or it needs text after it); /help lists them")


def _count(text: str, default: int) -> int:
    try:
        return max(0, int(text)) if text else default
    except ValueError:
        return default
