"""A step generated through a stream, with the text the grammar forces appended instead of sampled.

Against the real llama-server: the forced path gives a readable call while generating fewer tokens, and at a fixed
seed (greedy) the jumps mid-call give the same calls as one request from the same forced opening.

Against a small fake of llama-server's streaming ``/completion`` (for what a healthy server never does): a stream
dropped mid-call and a stream of garbage end the step with the backend's error, withdraw what was shown
(``stream_reset``) and save nothing. The fake answers as llama.cpp's tools/server/README.md documents it: ``GET
/props`` with ``default_generation_settings.n_ctx`` and ``total_slots``, ``POST /tokenize`` with a ``tokens`` list, and
``POST /completion`` with ``"stream": true`` answered as server-sent events, one ``data: {"content": ...,
"stop": false}`` per token and a last object with ``"stop": true``, ``stop_type``, the counts and ``timings``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from memgpt_backend_llamacpp import LlamaCppBackend

from memgpt_core import plugins
from memgpt_core.agent import functions
from memgpt_core.agent.agent import Agent, AgentSettings
from memgpt_core.agent.events import Event
from memgpt_core.agent.streaming import forced_opening, generate
from memgpt_core.errors import BackendResponseError
from memgpt_core.models import CompletionRequest, Grammar
from memgpt_core.storage import Store

OPENING = '{"function": "'
REPLY_OPENING = '{"function": "send_message", "params": {"inner_thoughts": "'


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    with Store(str(tmp_path / "agents.db")) as opened:
        yield opened


def new_agent(store: Store, backend: Any, events: list[Event], **settings: Any) -> Agent:
    record = store.create_agent("streamer", persona="I am Sam.", human="The user is Chad.")
    agent = Agent(
        store,
        record,
        backend,
        plugins.get_wrapper("chatml-grammar"),
        AgentSettings(context_window=4096, max_tokens=160, **settings),
        on_event=events.append,
    )
    agent.lock = store.lock(record)  # type: ignore[attr-defined]
    return agent


# -- the real llama-server ------------------------------------------------------------------------------------------


@pytest.fixture
def real(llama_server, store) -> Agent:
    return new_agent(store, LlamaCppBackend(llama_server.url), [])


GREEDY = {"temperature": 0, "seed": 7, "cache_prompt": False}


def _request(agent: Agent, message: str, *, reply_only: bool) -> CompletionRequest:
    prompt, grammar = agent.first_request(message)
    if reply_only:
        grammar = agent._reply_grammar()
    return CompletionRequest(
        prompt=prompt,
        max_tokens=160,
        stop=list(agent.wrapper.stop_sequences),
        grammar=grammar,
        sampling=GREEDY,
        cache_key=None,
    )


@pytest.mark.parametrize("reply_only", [True, False], ids=["reply-only", "every-function"])
def test_forced_text_is_appended_not_generated_and_the_call_reads(real, reply_only):
    request = _request(real, "Hi! My name is Priya.", reply_only=reply_only)
    assert request.grammar is not None
    opening = forced_opening(request.grammar.text)
    assert opening is not None and opening.text == (REPLY_OPENING if reply_only else OPENING)

    plain, _ = generate(real.backend, request, forcing=False, stream=False)
    forced, _ = generate(real.backend, request, forcing=True, stream=True)
    for completion in (plain, forced):
        call = real.wrapper.parse(completion.text, real.functions)
        assert call.name in functions.SCHEMA_BY_NAME
    assert forced.text.startswith(opening.text)
    tokens = real.backend.count_tokens
    # The plain path generated the opening itself; the forced path generated only the rest of the call (give or take a
    # few tokens split differently where forced and generated text meet).
    assert plain.completion_tokens is not None and plain.completion_tokens > tokens(opening.text)
    assert forced.completion_tokens is not None
    assert forced.completion_tokens <= tokens(forced.text) - tokens(opening.text) + 6


CAPITAL = r'''root ::= "The capital of France is" [ a-zA-Z,.]{1,40} "."'''


@pytest.mark.parametrize("question", ["What is the capital of France?", "Tell me about France."])
def test_at_a_fixed_seed_forced_text_gives_what_plain_sampling_gives(llama_server, question):
    """Appending the forced text changes what the model decides only through how the text is split into tokens: where
    plain sampling writes it in the tokens the prompt has (natural text; not the JSON of a call, which a model under
    a grammar writes in odd pieces, see docs/grammars.md), the same seed gives the same answer, for fewer tokens."""
    backend = LlamaCppBackend(llama_server.url)
    request = CompletionRequest(
        prompt=f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n",
        max_tokens=30,
        grammar=Grammar(format="gbnf", text=CAPITAL),
        sampling=GREEDY,
    )
    plain, _ = generate(backend, request, forcing=False, stream=False)
    forced, _ = generate(backend, request, forcing=True, stream=False)
    assert forced.text == plain.text
    assert plain.completion_tokens is not None and forced.completion_tokens is not None
    assert forced.completion_tokens < plain.completion_tokens


def test_a_streamed_turn_shows_the_pieces_of_what_it_stores(llama_server, store):
    events: list[Event] = []
    agent = new_agent(store, LlamaCppBackend(llama_server.url), events)
    result = agent.user_message("Hi! I am Priya.")
    assert result.replies
    shown: dict[str, str] = {"inner_thoughts": "", "assistant_message": ""}
    wholes: dict[str, list[str]] = {"inner_thoughts": [], "assistant_message": []}
    for event in events:
        if event.type == "stream_reset":
            shown = dict.fromkeys(shown, "")
        elif event.type.endswith("_delta"):
            shown[event.type.removesuffix("_delta")] += event.text or ""
        elif event.type in wholes:
            wholes[event.type].append(shown[event.type])
            assert (event.text or "").startswith(shown[event.type]) or not shown[event.type]
            shown[event.type] = ""
    assert any(wholes["assistant_message"]), "no reply was streamed in pieces"


# -- a fake llama-server for what the real one does not do on demand ------------------------------------------------

Script = Callable[["_Fake", dict[str, Any]], None]


class _Fake(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    scripts: ClassVar[list[Script]] = []
    prompts: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/props"):
            self._json({"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1, "model_path": "fake.gguf"})
        else:
            self._json({"status": "ok"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if self.path == "/tokenize":
            self._json({"tokens": list(range(len(body["content"]) // 4))})
            return
        self.prompts.append(body["prompt"])
        self.scripts.pop(0)(self, body)

    # the stream
    def start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def tokens(self, *pieces: str) -> None:
        for n, piece in enumerate(pieces, start=1):
            self.chunk(f"data: {json.dumps({'content': piece, 'stop': False, 'tokens_predicted': n})}\n\n")

    def final(self, n: int) -> None:
        last = {
            "content": "",
            "stop": True,
            "stop_type": "eos",
            "tokens_predicted": n,
            "tokens_evaluated": 30,
            "timings": {"prompt_n": 30, "prompt_ms": 1.0, "predicted_n": n, "predicted_ms": 5.0},
        }
        self.chunk(f"data: {json.dumps(last)}\n\n")
        self.chunk("")  # the chunked body's end


@pytest.fixture
def fake() -> Iterator[tuple[LlamaCppBackend, type[_Fake]]]:
    handler = type("Fake", (_Fake,), {"scripts": [], "prompts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LlamaCppBackend(f"http://127.0.0.1:{server.server_address[1]}", timeout=10), handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _saved(store: Store, agent: Agent) -> int:
    return store.count_messages(agent.record.id)


def test_the_stream_is_closed_at_a_forced_run_and_resumed_after_it(fake, store):
    backend, handler = fake

    def name(h: _Fake, body: dict[str, Any]) -> None:
        h.start()
        h.tokens("send")
        # The agent closes the stream here: the rest of the name and the opening of params are forced.
        try:
            h.tokens("_", "mess")
            h.final(3)
        except OSError:
            pass

    def rest(h: _Fake, body: dict[str, Any]) -> None:
        h.start()
        # The 15 characters after the thoughts (", "message": ") are forced too, but too few to be worth a request.
        h.tokens("Greet", " him", '."', ', "', "message", '": "', "Hello", " Chad", '!"}}')
        h.final(9)

    handler.scripts.extend([name, rest])
    events: list[Event] = []
    agent = new_agent(store, backend, events)
    result = agent.user_message("hi")
    assert result.replies == ["Hello Chad!"]
    first, second = handler.prompts
    assert first.endswith(OPENING)
    assert second == first + 'send_message", "params": {"inner_thoughts": "'
    thoughts_shown = "".join(e.text or "" for e in events if e.type == "inner_thoughts_delta")
    reply_shown = "".join(e.text or "" for e in events if e.type == "assistant_message_delta")
    assert (thoughts_shown, reply_shown) == ("Greet him.", "Hello Chad!")
    stored = agent.context[-2]
    assert stored.written == (
        '{"function": "send_message", "params": {"inner_thoughts": "Greet him.", "message": "Hello Chad!"}}'
    )


@pytest.mark.parametrize("fault", ["dropped", "garbage"])
def test_a_stream_that_breaks_mid_call_ends_the_step_withdraws_the_pieces_and_saves_nothing(fake, store, fault):
    backend, handler = fake

    def broken(h: _Fake, body: dict[str, Any]) -> None:
        h.start()
        h.tokens("I will greet", " him")
        if fault == "dropped":
            h.wfile.write(b'80\r\ndata: {"content": " war')
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
        else:
            h.chunk("data: <html><body>502 Bad Gateway</body></html>\n\n")

    def name(h: _Fake, body: dict[str, Any]) -> None:
        h.start()
        h.tokens("send")
        try:  # the agent has closed the stream: the rest of the name is forced
            h.tokens("_message")
            h.final(2)
        except OSError:
            pass

    handler.scripts.extend([name, broken])
    events: list[Event] = []
    agent = new_agent(store, backend, events)
    before = _saved(store, agent)
    context_before = list(agent.record.context)
    with pytest.raises(BackendResponseError) as caught:
        agent.user_message("hi")
    assert caught.value.url == backend.endpoint + "/completion" and caught.value.fix
    assert handler.prompts[1].endswith(REPLY_OPENING)
    kinds = [e.type for e in events]
    assert "inner_thoughts_delta" in kinds
    assert kinds[-1] == "stream_reset" and "stopped" in (events[-1].text or "")
    assert _saved(store, agent) == before
    reopened = store.get_agent("streamer")
    assert reopened is not None and reopened.context == context_before


def test_an_unreadable_streamed_answer_is_withdrawn_before_it_is_sampled_again(fake, store):
    backend, handler = fake

    def unreadable(h: _Fake, body: dict[str, Any]) -> None:
        # What a server that ignored the grammar could send: a call to a function that was not offered.
        h.start()
        h.tokens('{"function": "launch_rockets", "params": {"inner_thoughts": "', "Count", 'down."}}')
        h.final(3)

    def readable(h: _Fake, body: dict[str, Any]) -> None:
        h.start()
        h.tokens('{"function": "send_message", "params": {"inner_thoughts": "', "Hi", '.", "message": "Hello!"}}')
        h.final(3)

    handler.scripts.extend([unreadable, readable])
    events: list[Event] = []
    agent = new_agent(store, backend, events, forced_text=False)
    assert agent.user_message("hi").replies == ["Hello!"]
    kinds = [e.type for e in events]
    reset = kinds.index("stream_reset")
    assert kinds[:reset] == ["inner_thoughts_delta", "inner_thoughts_delta"]
    assert "launch_rockets" in (events[reset].text or "") and "sampling it again" in (events[reset].text or "")
    assert "".join(e.text or "" for e in events[reset:] if e.type == "inner_thoughts_delta") == "Hi."
    assert [e.text for e in events if e.type == "inner_thoughts"] == ["Hi."]
