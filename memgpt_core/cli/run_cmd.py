"""``memgpt run``: chat with a MemGPT agent. Also the flags and the event printer ``memgpt send`` shares."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

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
        click.option("--api-key", envvar="MEMGPT_API_KEY", help="Key for a server that needs one."),
        click.option("--context-window", type=click.IntRange(min=256), help="Context size to budget for, in tokens."),
        click.option("--model-path", type=click.Path(dir_okay=False), help="A GGUF file for the embedded server."),
        click.option("--max-tokens", type=click.IntRange(min=16), help="Output cap per step (default 512)."),
        click.option("--debug", is_flag=True, help="Show every function call and result in full."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
        create=create,
    )


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Printer:
    """Shows agent events for a person: thoughts dimmed, replies bold, one compact line per function call."""

    def __init__(self, *, debug: bool = False, replies_only: bool = False) -> None:
        self.debug = debug
        self.replies_only = replies_only

    def __call__(self, event: Any) -> None:
        kind = event.type
        if kind == "assistant_message":
            prefix = "" if self.replies_only else click.style("agent: ", fg="cyan", bold=True)
            click.echo(prefix + (event.text or ""))
        elif self.replies_only and not self.debug:
            if kind == "error":
                click.echo(click.style(f"error: {event.text}", fg="red"), err=True)
            return
        elif kind == "inner_thoughts":
            click.echo(click.style(f"  ({event.text})", dim=True, italic=True))
        elif kind == "function_call":
            if event.name == "send_message" and not self.debug:
                return
            args = {k: v for k, v in (event.arguments or {}).items()}
            if self.debug:
                shown = json.dumps(args, ensure_ascii=False, indent=2)
            else:
                shown = ", ".join(f"{k}={_short(v, 40)}" for k, v in args.items())
            click.echo(click.style(f"  ⚡ {event.name}({shown})", fg="yellow"))
        elif kind == "function_return":
            full = event.text or ""
            text = full if self.debug else "ok" if event.ok else _short(full, 100)
            click.echo(click.style(f"    → {text}", fg="yellow" if event.ok else "red", dim=bool(event.ok)))
        elif kind == "status":
            click.echo(click.style(f"  [{event.text}]", fg="magenta", dim=True))
        elif kind == "error":
            click.echo(click.style(f"error: {event.text}", fg="red"), err=True)


class Spinner:
    """A small spinner on stderr while the model works; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()

    @contextlib.contextmanager
    def __call__(self, label: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        done = threading.Event()

        def spin() -> None:
            for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
                sys.stderr.write(f"\r{frame} {label}…")
                sys.stderr.flush()
                if done.wait(0.1):
                    break
            sys.stderr.write("\r" + " " * (len(label) + 4) + "\r")
            sys.stderr.flush()

        thread = threading.Thread(target=spin, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def progress_line(message: str) -> None:
    click.echo(click.style(message, dim=True), err=True)


@click.command()
@agent_options
@click.option("--first", is_flag=True, help="You speak first (no greeting from a new agent).")
def run(first: bool, **kwargs: Any) -> None:
    """Chat with a MemGPT agent (starts an embedded llama.cpp server when no backend is configured)."""
    from memgpt_core.agent.session import open_session

    printer = Printer(debug=kwargs["debug"])
    try:
        with open_session(session_options(kwargs), on_event=printer, busy=Spinner(), progress=progress_line) as session:
            agent = session.agent
            state = "new agent" if session.created else "resuming agent"
            click.echo(click.style(f"{state} {agent.record.name}", bold=True), err=True)
            where = session.server_description or f"{agent.backend.name} at {agent.backend.endpoint}"
            click.echo(
                click.style(f"wrapper {agent.wrapper_name}, {where}, context {agent.window} tokens", dim=True),
                err=True,
            )
            if agent.grammar_note:
                click.echo(click.style(agent.grammar_note, fg="yellow"), err=True)
            for note in session.notes:
                click.echo(click.style(note, fg="yellow"), err=True)
            click.echo(click.style("type /help for commands, /exit to leave", dim=True), err=True)
            if session.created and not first:
                _guarded(agent.login, printer)
            _chat(agent, printer)
    except KeyboardInterrupt:
        # Every context manager above has run by now: the lock is released and the embedded server stopped.
        click.echo("\nbye (the agent is saved)", err=True)


def _guarded(action: Callable[[], Any], printer: Printer) -> Any:
    """Run one turn; a failure is shown as a sentence and the chat goes on."""
    from memgpt_core.errors import MemGPTError

    try:
        return action()
    except MemGPTError as exc:
        click.echo(click.style(f"error: {exc}", fg="red"), err=True)
        return None


def _chat(agent: Any, printer: Printer) -> None:
    while True:
        try:
            line = input(click.style("you: ", fg="green", bold=True) if sys.stdin.isatty() else "")
        except EOFError:
            click.echo("", err=True)
            return
        text = line.strip()
        if not text:
            continue
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
