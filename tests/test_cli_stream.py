"""Streamed replies on the command line: the printer fed event sequences, `memgpt send --json --stream` against the real
llama-server, and `memgpt run` watched through a real terminal (tmux) while the reply is being written."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memgpt_core.agent.events import DELTA_TYPES, EVENT_TYPES, Event
from memgpt_core.cli.printer import Printer, Spinner

sys.path.insert(0, str(Path(__file__).parent))
from test_configure import clean_env, terminal  # noqa: F401  (the tmux fixture, defined once)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    return ANSI.sub("", text)


def thoughts(*pieces: str) -> list[Event]:
    return [Event("inner_thoughts_delta", text=p) for p in pieces]


def message(*pieces: str) -> list[Event]:
    return [Event("assistant_message_delta", text=p) for p in pieces]


def whole_reply(thought: str, reply: str) -> list[Event]:
    """The whole events of one send_message step, in the order the agent emits them."""
    return [
        Event("inner_thoughts", text=thought),
        Event("function_call", name="send_message", arguments={"message": reply}),
        Event("assistant_message", text=reply),
    ]


def feed(printer: Printer, events: list[Event], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Each event's output (stdout), one string per event, so a test can see what was on screen after each."""
    shown = []
    for event in events:
        printer(event)
        shown.append(capsys.readouterr().out)
    return shown


# -- the printer: whole events as before, pieces as they come ------------------------------------------------------


def test_whole_events_print_exactly_as_before_streaming(capsys):
    """A backend that does not stream sends no delta events; every line is the format `memgpt run` always printed."""
    events = [
        *whole_reply("Greet them.", "Hello there!"),
        Event("inner_thoughts", text="Note it."),
        Event("function_call", name="core_memory_append", arguments={"name": "human", "content": "likes tea"}),
        Event("function_return", name="core_memory_append", text="None", ok=True),
        Event("status", text="summarised 4 older messages"),
    ]
    printer = Printer(color=True)
    for event in events:
        printer(event)
    assert capsys.readouterr().out == (
        "\x1b[2m\x1b[3m  (Greet them.)\x1b[0m\n"
        "\x1b[36m\x1b[1magent: \x1b[0mHello there!\n"
        "\x1b[2m\x1b[3m  (Note it.)\x1b[0m\n"
        "\x1b[33m  ⚡ core_memory_append(name=human, content=likes tea)\x1b[0m\n"
        "\x1b[33m\x1b[2m    → ok\x1b[0m\n"
        "\x1b[35m\x1b[2m  [summarised 4 older messages]\x1b[0m\n"
    )


def test_pieces_are_printed_as_they_come_and_the_whole_events_add_only_the_line_ends(capsys):
    events = [
        *thoughts("The user ", "said hi."),
        *message("Hi", ", friend", "!"),
        *whole_reply("The user said hi.", "Hi, friend!"),
    ]
    shown = feed(Printer(), events, capsys)
    assert shown[:5] == ["  (The user ", "said hi.", ")\nagent: Hi", ", friend", "!"]
    assert shown[5:] == ["", "", "\n"], "the whole thoughts were shown; so was the message, but for its line end"
    assert "".join(shown) == "  (The user said hi.)\nagent: Hi, friend!\n"


def test_a_streamed_step_looks_like_the_same_step_unstreamed(capsys):
    """Same text, same styles (dim italic thoughts, the bold cyan prefix), only written in pieces."""
    whole = whole_reply("Be kind.", "Good morning.")
    before = "".join(feed(Printer(color=True), whole, capsys))
    after = "".join(
        feed(Printer(color=True), [*thoughts("Be ", "kind."), *message("Good ", "morning."), *whole], capsys)
    )
    assert plain(after) == plain(before)
    assert "\x1b[2m\x1b[3m  (\x1b[0m\x1b[2m\x1b[3mBe \x1b[0m" in after and "\x1b[36m\x1b[1magent: \x1b[0mGood " in after


def test_thoughts_of_a_step_that_calls_another_function_end_with_the_whole_event(capsys):
    events = [
        *thoughts("Remember ", "the tea."),
        Event("inner_thoughts", text="Remember the tea."),
        Event("function_call", name="core_memory_append", arguments={"name": "human", "content": "tea"}),
        Event("function_return", name="core_memory_append", text="None", ok=True),
    ]
    shown = feed(Printer(), events, capsys)
    assert shown[:3] == ["  (Remember ", "the tea.", ")\n"]
    assert "".join(shown) == "  (Remember the tea.)\n  ⚡ core_memory_append(name=human, content=tea)\n    → ok\n"


def test_a_whole_text_longer_than_its_pieces_prints_the_rest(capsys):
    shown = feed(Printer(), [*message("Hel"), Event("assistant_message", text="Hello.")], capsys)
    assert shown == ["agent: Hel", "lo.\n"]


def test_a_whole_text_that_differs_from_its_pieces_is_printed_whole_on_a_new_line(capsys):
    events = [*message("Hello Bob", ", how"), Event("assistant_message", text="Hello Alice.")]
    shown = feed(Printer(), events, capsys)
    assert shown == ["agent: Hello Bob", ", how", "\nagent: Hello Alice.\n"]
    events = [*thoughts("Maybe"), *message("Hi"), *whole_reply("Certainly.", "Hi")]
    assert "".join(feed(Printer(), events, capsys)) == "  (Maybe)\nagent: Hi\n  (Certainly.)\n"


def test_a_reset_withdraws_the_pieces_and_the_next_try_starts_afresh(capsys):
    events = [
        *thoughts("I will"),
        *message("Hel"),
        Event("stream_reset", text="the answer could not be read (no closing brace); sampling it again"),
        *thoughts("Greet."),
        *message("Hello!"),
        *whole_reply("Greet.", "Hello!"),
    ]
    shown = feed(Printer(), events, capsys)
    assert shown[2] == (
        "\n  [the text above is withdrawn: the answer could not be read (no closing brace); sampling it again]\n"
    )
    assert "".join(shown) == (
        "  (I will)\nagent: Hel\n"
        "  [the text above is withdrawn: the answer could not be read (no closing brace); sampling it again]\n"
        "  (Greet.)\nagent: Hello!\n"
    )


def test_a_reset_with_nothing_shown_prints_nothing(capsys):
    """`memgpt send` shows replies only: withdrawn thoughts it never printed need no note."""
    events = [
        *thoughts("hmm"),
        Event("stream_reset", text="the server cut the stream"),
        *message("Hi"),
        *whole_reply("hmm", "Hi"),
    ]
    assert "".join(feed(Printer(replies_only=True), events, capsys)) == "Hi\n"


def test_replies_only_streams_the_message_without_a_prefix(capsys):
    events = [*thoughts("Greet."), *message("Good ", "day."), *whole_reply("Greet.", "Good day.")]
    shown = feed(Printer(replies_only=True), events, capsys)
    assert shown == ["", "Good ", "day.", "", "", "\n"]


def test_an_error_while_a_piece_is_on_screen_starts_on_a_line_of_its_own(capsys):
    printer = Printer()
    printer(Event("assistant_message_delta", text="Half a"))
    printer(Event("error", text="the database is locked"))
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("agent: Half a\n", "error: the database is locked\n")
    printer(Event("assistant_message_delta", text="Again"))
    printer.end_line()
    assert capsys.readouterr().out == "agent: Again\n"


def test_debug_shows_the_send_message_call_and_keeps_the_streamed_message_once(capsys):
    events = [*thoughts("Hi."), *message("Hello"), *whole_reply("Hi.", "Hello")]
    text = "".join(feed(Printer(debug=True), events, capsys))
    assert text.count("Hello") == 2  # once streamed, once inside the call's arguments
    assert text.startswith("  (Hi.)\nagent: Hello\n  ⚡ send_message(")


# -- the spinner stops before the first piece and stays off -----------------------------------------------------


class Screen:
    """A terminal stand-in shared by stdout and stderr: records every write in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def stream(self, name: str) -> io.TextIOBase:
        screen = self

        class Stream(io.TextIOBase):
            def isatty(self) -> bool:
                return True

            def write(self, text: str | bytes) -> int:
                if isinstance(text, bytes):  # click writes to the binary buffer of a stream it cannot trust
                    text = text.decode()
                with screen.lock:
                    screen.writes.append((name, text))
                return len(text)

        return Stream()


def test_the_spinner_is_wiped_before_the_first_piece_and_never_draws_over_the_reply(monkeypatch):
    screen = Screen()
    monkeypatch.setattr(sys, "stdout", screen.stream("out"))
    spinner = Spinner(stream=screen.stream("err"))
    printer = Printer(spinner=spinner)
    with spinner("thinking"):
        time.sleep(0.25)
        printer(Event("assistant_message_delta", text="Hel"))
        time.sleep(0.35)  # three more frames' time: none may be drawn now
        printer(Event("assistant_message_delta", text="lo"))
    printer(Event("assistant_message", text="Hello"))
    first_out = next(i for i, (name, _) in enumerate(screen.writes) if name == "out")
    before, after = screen.writes[:first_out], screen.writes[first_out:]
    assert any("thinking…" in text for _, text in before), "the spinner did draw while the model had not written"
    assert before[-1] == ("err", "\r" + " " * len("thinking    ") + "\r"), "its line is wiped before the piece"
    assert [name for name, _ in after] == ["out"] * len(after), "no spinner frame after the first piece"
    assert plain("".join(text for _, text in after)) == "agent: Hello\n"


def test_without_pieces_the_spinner_runs_its_whole_block_as_before(monkeypatch):
    screen = Screen()
    monkeypatch.setattr(sys, "stdout", screen.stream("out"))
    spinner = Spinner(stream=screen.stream("err"))
    printer = Printer(spinner=spinner)
    with spinner("thinking"):
        time.sleep(0.35)
    printer(Event("assistant_message", text="Hello"))
    drawn = [text for name, text in screen.writes if name == "err"]
    assert sum("thinking…" in text for text in drawn) >= 3
    assert drawn[-1] == "\r" + " " * len("thinking    ") + "\r", "wiped when its block ended"
    assert plain("".join(text for name, text in screen.writes if name == "out")) == "agent: Hello\n"


# -- against the real llama-server -------------------------------------------------------------------------------


def memgpt(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memgpt_core", *args],
        capture_output=True,
        text=True,
        env=clean_env(home),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def server_args(url: str) -> list[str]:
    return ["--backend", "llamacpp", "--endpoint", url, "--max-tokens", "96", "--temperature", "0.3"]


def streams(url: str) -> bool:
    from memgpt_core.plugins import get_backend

    return get_backend("llamacpp")(url).capabilities.streaming


@pytest.fixture
def streaming_server(llama_server):
    if not streams(llama_server.url):
        pytest.skip("the llamacpp backend does not stream yet (Capabilities.streaming is False)")
    return llama_server


def test_send_json_stream_writes_the_pieces_and_they_add_up_to_the_reply(tmp_path, streaming_server):
    done = memgpt(
        tmp_path / "home", "send", "--agent", "s", "--json", "--stream", *server_args(streaming_server.url), "Hi!"
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {e["type"] for e in events} <= set(EVENT_TYPES) | set(DELTA_TYPES)
    deltas = [e for e in events if e["type"] in DELTA_TYPES]
    assert all(set(e) == {"type", "text"} and isinstance(e["text"], str) and e["text"] for e in deltas), deltas
    # Walk the events as a reader would: pieces pile up until their whole event, a reset throws them away.
    pieces: dict[str, list[str]] = {"inner_thoughts": [], "assistant_message": []}
    replies = 0
    for event in events:
        kind = event["type"]
        if kind == "stream_reset":
            pieces = {k: [] for k in pieces}
        elif kind.endswith("_delta"):
            pieces[kind.removesuffix("_delta")].append(event["text"])
        elif kind in pieces:
            assert "".join(pieces[kind]) == event["text"], (kind, pieces[kind], event["text"])
            replies += kind == "assistant_message" and bool(pieces[kind])
            pieces[kind] = []
    assert replies >= 1, "at least one reply was streamed in pieces"
    assert sum(e["type"] == "assistant_message_delta" for e in events) >= 2, "in more than one piece"


def test_send_json_without_stream_writes_no_pieces(tmp_path, streaming_server):
    done = memgpt(tmp_path / "home", "send", "--agent", "s", "--json", *server_args(streaming_server.url), "Hi!")
    assert done.returncode == 0, done.stderr
    types = [json.loads(line)["type"] for line in done.stdout.splitlines()]
    assert "assistant_message" in types and not set(types) & set(DELTA_TYPES)


def test_send_stream_without_json_prints_the_reply_once(tmp_path, streaming_server):
    home = tmp_path / "home"
    done = memgpt(home, "send", "--agent", "s", "--stream", *server_args(streaming_server.url), "Hi!")
    assert done.returncode == 0, done.stderr
    replies = last_replies(home, "s")
    assert replies and done.stdout.endswith(replies[-1] + "\n"), done.stdout
    # Each reply whole, on its own line; a try that was withdrawn (rare) is followed by the line saying so.
    kept = re.sub(r"(?m)^.*\n  \[the text above is withdrawn: .*\]\n", "", done.stdout)
    assert kept == "".join(reply + "\n" for reply in replies), done.stdout


def last_replies(home: Path, agent: str) -> list[str]:
    """The messages the agent sent in its last turn, as stored (after the last user message)."""
    from memgpt_core.storage import Store

    with Store(home / "memgpt.db") as store:
        record = store.get_agent(agent)
        assert record is not None
        messages = store.get_messages(record.context)
    replies: list[str] = []
    for m in messages:
        if m.role == "user" and '"user_message"' in (m.content or ""):
            replies = []
        call = m.function_call or {}
        if m.role == "assistant" and call.get("name") == "send_message":
            replies.append(json.loads(call["arguments"])["message"])
    return replies


# -- memgpt run in a real terminal ---------------------------------------------------------------------------------


def lines(text: str) -> str:
    """Text as the pane shows it: tmux drops the spaces at the end of a line."""
    return "\n".join(line.rstrip() for line in text.splitlines())


def agent_lines(screen: str) -> list[str]:
    return [line.removeprefix("agent: ") for line in screen.splitlines() if line.startswith("agent: ")]


def test_run_shows_the_reply_while_it_is_written(tmp_path, streaming_server, terminal):  # noqa: F811
    home = tmp_path / "home"
    args = " ".join(server_args(streaming_server.url))
    terminal.start(f"{sys.executable} -m memgpt_core run --agent t --first {args}", clean_env(home))
    terminal.wait_for("you:")
    typed = "Tell me about cats in two sentences."
    terminal.type(typed, "Enter")
    screens: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        # -J joins a reply the pane wrapped back into one line.
        screen = terminal.tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-200")
        screens.append(screen)
        if f"you: {typed}" in screen and screen.rstrip().endswith("you:"):  # the next prompt: the turn is over
            break
        time.sleep(0.03)
    else:
        raise AssertionError("the reply never finished:\n" + terminal.screen())
    final = lines(screens[-1])
    replies = last_replies(home, "t")
    assert replies, "the turn ended with a message to the user"
    for reply in replies:
        assert lines(f"agent: {reply}") + "\n" in final, f"the reply ends whole, on its own lines:\n{final}"
    firsts = [reply.splitlines()[0] for reply in replies if reply.strip()]
    partial = [
        line
        for screen in screens
        for line in agent_lines(screen)
        if line.strip() and any(len(line) < len(first) and first.startswith(line) for first in firsts)
    ]
    assert partial, f"no capture showed a reply part-written ({len(screens)} captures):\n{final}"
    for screen in screens:  # the spinner never drew over the reply: its frame stands on a line of its own
        for line in screen.splitlines():
            if "thinking…" in line:
                assert re.fullmatch(r". thinking…\s*", line), line
    terminal.type("/exit", "Enter")
