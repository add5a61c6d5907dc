"""Conformance kit for plugin authors: subclass one class in your tests, and pytest checks the plugin contract.

::

    from memgpt_core.testing import BackendConformance, GrammarConformance, WrapperConformance

    class TestMyBackend(BackendConformance):
        backend_class = MyBackend

    class TestMyWrapper(WrapperConformance):
        wrapper_class = MyWrapper

    class TestMyGrammar(GrammarConformance):
        grammar_class = MyGrammar

Everything runs without a server, except the live backend checks: give them a server by overriding the ``endpoint``
fixture (they are skipped, and say so, while it returns None). The kit needs pytest; core itself does not.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import BackendUnavailableError, ConfigError, ParseError
from memgpt_core.grammar import GrammarProvider
from memgpt_core.wrapper import Wrapper

GRAMMAR_FORMATS = frozenset({"gbnf", "json_schema"})
HEAVY_MODULES = ("pydantic", "requests", "httpx", "urllib3", "numpy", "torch", "memgpt_core.models")
"""What a plugin's registering module must not import: memgpt imports every plugin for ``memgpt --help``."""

# -- sample data: MemGPT-shaped functions and a conversation with every role ----------------------------------------

SAMPLE_FUNCTIONS: list[dict[str, Any]] = [
    {
        "name": "send_message",
        "description": "Shows a message to the human user (marker-fn-desc-send).",
        "parameters": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "The text the user will read."}},
            "required": ["message"],
        },
    },
    {
        "name": "archival_memory_search",
        "description": "Looks up passages in archival memory by meaning (marker-fn-desc-search).",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "page": {"type": "integer", "description": "Which page of results, from 0."},
            },
            "required": ["query"],
        },
    },
]

# Each marker is a plain ASCII token inside a string value, so it survives a wrapper re-serialising the JSON.
SYSTEM_MARKER = "marker-system-4b1e"
USER_MARKER = "marker-user-9c2f"
THOUGHT_MARKER = "marker-thought-5d7a"
REPLY_MARKER = "marker-reply-3e8b"
RETURN_MARKER = "marker-return-1f6c"
SNAPSHOT_MARKER = "marker-snapshot-7a0d"

SAMPLE_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": f"You are a helpful agent with a memory. {SYSTEM_MARKER}"},
    {
        "role": "user",
        "content": json.dumps({"type": "user_message", "message": f"hi, {USER_MARKER}", "time": "2024-01-01 10:00"}),
    },
    {
        "role": "assistant",
        "content": f"The user said hello. {THOUGHT_MARKER}",
        "function_call": {"name": "send_message", "arguments": json.dumps({"message": f"Hello! {REPLY_MARKER}"})},
    },
    {
        "role": "function",
        "name": "send_message",
        "content": json.dumps({"status": "OK", "message": RETURN_MARKER, "time": "2024-01-01 10:00"}),
    },
]


# -- a conversation for golden-prompt tests: one message of every kind the agent sends, in the agent's layout -------
# (the instructions, core memory as a second system message, a user event, an answer, its result, a later alert).
# A wrapper plugin's tests render it and compare with the exact prompt their format must give.

GOLDEN_FUNCTIONS: list[dict[str, Any]] = [
    {
        "name": "send_message",
        "description": "Show a message to the user.",
        "parameters": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "What the user reads."}},
            "required": ["message"],
        },
    },
    {
        "name": "conversation_search",
        "description": "Search past messages.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words to look for."},
                "page": {"type": "integer"},
            },
            "required": ["query"],
        },
    },
]
GOLDEN_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are Sam, an agent with a memory."},
    {"role": "system", "content": "Core memory: the human is called Chad."},
    {"role": "user", "content": '{"type": "user_message", "message": "Hi, I am Chad.", "time": "2024-01-01 10:00"}'},
    {
        "role": "assistant",
        "content": "A new user. Greet him.",
        "function_call": {"name": "send_message", "arguments": '{"message": "Hello Chad!"}'},
    },
    {
        "role": "function",
        "name": "send_message",
        "content": '{"status": "OK", "message": null, "time": "2024-01-01 10:00"}',
    },
    {"role": "system", "content": "Warning: the context is 75% full."},
]


GOLDEN_SYSTEM = (
    "You are Sam, an agent with a memory.\n"
    "\n"
    "Reply to every turn with one function call written as JSON, and nothing after it:\n"
    '{"function": "<name>", "params": {"inner_thoughts": "<private thoughts>", <arguments>}}\n'
    "inner_thoughts is your private reasoning, a sentence or two; the user never sees it. "
    "The user only reads what you pass to send_message.\n"
    "\n"
    "Functions:\n"
    "send_message: Show a message to the user.\n"
    "  message (string, required): What the user reads.\n"
    "conversation_search: Search past messages.\n"
    "  query (string, required): Words to look for.\n"
    "  page (integer)"
)
"""The first system text a :class:`~memgpt_core.prompting.JSONCallWrapper` writes for GOLDEN_MESSAGES: the system
message, then core's call instructions for GOLDEN_FUNCTIONS. Each format frames it its own way."""

GOLDEN_ANSWER = (
    '{"function": "send_message", "params": {"inner_thoughts": "A new user. Greet him.", "message": "Hello Chad!"}}'
)
"""The assistant message of GOLDEN_MESSAGES as a JSON-call wrapper writes it back."""


@dataclass(frozen=True)
class SampleCall:
    """A function call a model could write, and what the wrapper must read from it."""

    name: str
    arguments: dict[str, Any]
    inner_thoughts: str | None
    raw: str
    """The model's text exactly as the wrapper receives it (after the end of the prompt)."""


def assert_light_import(module: str) -> None:
    """Import ``module`` in a fresh interpreter and fail if it pulled in something heavy (see HEAVY_MODULES)."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if f"No module named {module.split('.')[0]!r}" in done.stderr:
        pytest.skip(f"{module} cannot be imported on its own (a class defined in a test file?)")
    assert done.returncode == 0, f"importing {module} failed:\n{done.stderr}"
    heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert not heavy, (
        f"importing {module} imports {', '.join(heavy)}; memgpt imports every plugin at start-up, "
        "so import these inside the methods that use them"
    )


_LONG_PROMPT = "Write out every number from one to one hundred in words, separated by commas."
"""A prompt whose answer is long both as raw text and as a chat route's user message, for the checks that need an
answer to reach its token cap."""


def _long_request(max_tokens: int) -> Any:
    """A request whose answer runs to ``max_tokens``: the end-of-text token banned where the server can ban it, and
    greedy at a fixed seed where it cannot (LM Studio, Ollama), so that a chat model's short answer is not left to
    chance."""
    from memgpt_core.models import CompletionRequest

    return CompletionRequest(
        prompt=_LONG_PROMPT, max_tokens=max_tokens, ban_eos=True, sampling={"temperature": 0, "seed": 1}
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- backends -------------------------------------------------------------------------------------------------------


class BackendConformance:
    """Checks a ``memgpt_core.backend.Backend`` subclass. Set ``backend_class``; override ``endpoint`` for live checks.

    ``expect_registered``: the backend must be installed and registered under its name (turn off to run the kit
    on a class before your package is installed).
    """

    backend_class: ClassVar[type[Backend]]
    expect_registered: ClassVar[bool] = True
    stream_max_tokens: ClassVar[int] = 32
    """Tokens for the streaming checks' answer: enough to take several reads, for a server that sends text in
    batches (KoboldCpp polls every 20 ms, after a 350 ms start)."""

    @pytest.fixture
    def endpoint(self) -> str | None:
        """The URL of a running server of this backend's kind, for the live checks; None skips them."""
        return None

    @pytest.fixture
    def live_backend(self, endpoint: str | None) -> Backend:
        if not endpoint:
            pytest.skip(f"no server for the {self.backend_class.__name__} live checks: override the endpoint fixture")
        backend = self.backend_class(endpoint, timeout=120)
        backend.wait_until_ready(timeout=120)
        return backend

    # declared attributes

    def test_is_a_backend(self) -> None:
        assert isinstance(self.backend_class, type) and issubclass(self.backend_class, Backend)

    def test_declares_a_name(self) -> None:
        name = getattr(self.backend_class, "name", None)
        assert isinstance(name, str) and name, "set the class attribute `name`, the name users pass as --backend"
        assert name == name.strip() and " " not in name, f"backend name {name!r} must be one word"

    def test_declares_a_default_endpoint_in_normal_form(self) -> None:
        default = getattr(self.backend_class, "default_endpoint", None)
        assert isinstance(default, str) and default, "set the class attribute `default_endpoint`"
        assert self.backend_class.normalize_endpoint(default) == default, "write default_endpoint in its normal form"

    def test_declares_capabilities(self) -> None:
        caps = self.backend_class.capabilities
        assert isinstance(caps, Capabilities)
        assert isinstance(caps.grammar_formats, frozenset)
        assert caps.grammar_formats <= GRAMMAR_FORMATS, f"unknown grammar formats: {caps.grammar_formats}"
        for flag in ("exact_tokenizer", "server_context", "streaming", "chat_template", "embedded"):
            assert isinstance(getattr(caps, flag), bool), f"capabilities.{flag} must be True or False"

    def test_registered_under_its_name(self) -> None:
        if not self.expect_registered:
            pytest.skip("expect_registered is False")
        from memgpt_core import plugins

        plugins.reset()
        assert plugins.get_backends().get(self.backend_class.name) is self.backend_class, (
            f"{self.backend_class.name!r} is not registered by this class: is the package installed "
            "(pip install -e .) with a [project.entry-points.memgpt] entry?"
        )

    def test_module_imports_nothing_heavy(self) -> None:
        assert_light_import(self.backend_class.__module__)

    # endpoints

    def test_no_endpoint_means_the_default(self) -> None:
        assert self.backend_class().endpoint == self.backend_class.default_endpoint

    def test_trailing_slash_is_ignored(self) -> None:
        default = self.backend_class.default_endpoint
        assert self.backend_class(default + "/").endpoint == self.backend_class(default).endpoint

    def test_scheme_is_added_to_host_and_port(self) -> None:
        assert self.backend_class("127.0.0.1:1234").endpoint.startswith("http://127.0.0.1:1234")

    @pytest.mark.parametrize("bad", ["ftp://127.0.0.1:1234", "http://", "http://127.0.0.1:port"])
    def test_malformed_endpoint_is_refused_with_a_config_error(self, bad: str) -> None:
        with pytest.raises(ConfigError):
            self.backend_class(bad)

    def test_construction_needs_no_server(self) -> None:
        backend = self.backend_class(f"http://127.0.0.1:{closed_port()}")
        assert backend.endpoint.startswith("http://127.0.0.1:")

    def test_nothing_listening_is_a_backend_unavailable_error(self) -> None:
        from memgpt_core.models import CompletionRequest

        url = f"http://127.0.0.1:{closed_port()}"
        backend = self.backend_class(url, timeout=5)
        with pytest.raises(BackendUnavailableError) as caught:
            backend.complete(CompletionRequest(prompt="Hello", max_tokens=2))
        where = f"{caught.value} {caught.value.url or ''}"
        assert "127.0.0.1" in where, "the error must say which URL did not answer"

    # live checks, against the server the endpoint fixture names

    def test_live_completion(self, live_backend: Backend) -> None:
        from memgpt_core.models import Completion, CompletionRequest

        done = live_backend.complete(CompletionRequest(prompt="Once upon a time", max_tokens=4))
        assert isinstance(done, Completion)
        assert isinstance(done.text, str)
        assert done.finish_reason in ("stop", "length")
        if done.completion_tokens is not None:
            assert 0 <= done.completion_tokens <= 4

    def test_live_token_cap_is_reported_as_length(self, live_backend: Backend) -> None:
        done = live_backend.complete(_long_request(3))
        assert done.finish_reason == "length", (
            f"an answer cut at the 3-token cap must be reported as 'length', not {done.finish_reason!r}: {done.text!r}"
        )

    def test_live_token_count_and_context(self, live_backend: Backend) -> None:
        caps = self.backend_class.capabilities
        count = live_backend.count_tokens("Hello there, how are you today?")
        assert count is None or (isinstance(count, int) and count > 0)
        if caps.exact_tokenizer:
            assert count is not None, "capabilities.exact_tokenizer is declared, but count_tokens gave None"
        window = live_backend.context_window()
        assert window is None or (isinstance(window, int) and window > 0)
        if caps.server_context:
            assert window is not None, "capabilities.server_context is declared, but context_window gave None"

    def test_live_chat_template(self, live_backend: Backend) -> None:
        if not self.backend_class.capabilities.chat_template:
            pytest.skip("this backend declares no chat_template capability")
        template = live_backend.chat_template()
        # None is honest for a model file without a template; a template must be text a Jinja engine can read.
        assert template is None or (isinstance(template.source, str) and template.source.strip())

    def test_live_grammar_constrains_the_output(self, live_backend: Backend) -> None:
        from memgpt_core.models import CompletionRequest, Grammar

        formats = self.backend_class.capabilities.grammar_formats
        if not formats:
            pytest.skip("this backend declares no grammar formats")
        if "gbnf" in formats:
            grammar = Grammar(format="gbnf", text='root ::= "yes" | "no"')
        else:
            grammar = Grammar(format="json_schema", text=json.dumps({"type": "string", "enum": ["yes", "no"]}))
        done = live_backend.complete(
            CompletionRequest(prompt="Is the sky green? Answer:", max_tokens=8, grammar=grammar)
        )
        text = done.text.strip()
        if grammar.format == "json_schema":
            text = json.loads(text)
        assert text in ("yes", "no"), f"the grammar was not applied: {done.text!r}"

    def test_live_stream_pieces_join_to_the_completion(self, live_backend: Backend) -> None:
        from memgpt_core.backend import Delta
        from memgpt_core.models import Completion

        if not self.backend_class.capabilities.streaming:
            pytest.skip("this backend declares no streaming capability")
        pieces = list(live_backend.stream(_long_request(self.stream_max_tokens)))
        assert pieces and all(isinstance(piece, Delta) for piece in pieces), "stream must yield Delta pieces"
        with_text = [piece for piece in pieces if piece.text]
        assert len(with_text) > 1, (
            f"capabilities.streaming is declared, but a {self.stream_max_tokens}-token answer came as "
            f"{len(with_text)} piece(s) with text: the text must be yielded as the server writes it"
        )
        finals = [index for index, piece in enumerate(pieces) if piece.completion is not None]
        assert finals == [len(pieces) - 1], "exactly one piece, the last, must carry the completion"
        completion = pieces[-1].completion
        assert isinstance(completion, Completion)
        assert completion.text == "".join(piece.text for piece in pieces), "the completion's text is the pieces joined"
        assert completion.finish_reason in ("stop", "length")

    def test_live_stream_closed_early_frees_the_server(self, live_backend: Backend) -> None:
        from memgpt_core.models import CompletionRequest

        if not self.backend_class.capabilities.streaming:
            pytest.skip("this backend declares no streaming capability")
        stream = live_backend.stream(_long_request(self.stream_max_tokens))
        first = next(stream)
        assert first.completion is None, "the first of many pieces must not carry the completion yet"
        stream.close()
        # The connection was let go: the server answers the next request (a backend that kept reading, or left the
        # generation running on a one-at-a-time server, would block or fail here).
        done = live_backend.complete(CompletionRequest(prompt="Once upon a time", max_tokens=4))
        assert isinstance(done.text, str) and done.finish_reason in ("stop", "length")


# -- prompt wrappers ------------------------------------------------------------------------------------------------


class WrapperConformance:
    """Checks a prompt wrapper as core uses it: through :class:`memgpt_core.wrapper.Wrapper`, the adapter every
    registered wrapper is handed out behind. A ``PromptWrapper`` subclass and a class written for MemGPT 0.3 both
    pass. Set ``wrapper_class`` (or ``wrapper_instance``, for one made with constructor arguments as MemGPT's
    ``-grammar`` variants are, with ``name`` set to its registered name), or ``wrapper_name`` to test what is
    registered.

    The default samples are calls written as MemGPT's JSON (``{"function": ..., "params": {...}}``); a wrapper whose
    model answers in another shape overrides ``sample_calls``.
    """

    wrapper_class: ClassVar[type | None] = None
    wrapper_instance: ClassVar[Any] = None
    wrapper_name: ClassVar[str | None] = None
    name: ClassVar[str] = "under-test"

    def make_wrapper(self) -> Wrapper:
        if self.wrapper_name:
            from memgpt_core import plugins

            plugins.reset()
            return plugins.get_wrapper(self.wrapper_name)
        registered = self.wrapper_instance if self.wrapper_instance is not None else self.wrapper_class
        assert registered is not None, "set wrapper_class, wrapper_instance or wrapper_name on your test class"
        return Wrapper.make(registered, name=self.name)

    @pytest.fixture
    def wrapper(self) -> Wrapper:
        return self.make_wrapper()

    @pytest.fixture
    def prompt(self, wrapper: Wrapper) -> str:
        return wrapper.prompt(list(SAMPLE_MESSAGES), list(SAMPLE_FUNCTIONS))

    def sample_calls(self, wrapper: Wrapper, prompt: str) -> list[SampleCall]:
        """Well-formed answers to the sample prompt, as the model would write them after the prompt's end."""
        thoughts = wrapper.inner_thoughts_in_params
        calls = [
            ("send_message", {"message": "Hello, Chad! Ça va? 👋"}, "First contact; be warm."),
            ("archival_memory_search", {"query": "favourite colour", "page": 0}, "I should check my notes."),
        ]
        samples = []
        for name, arguments, inner in calls:
            params = {"inner_thoughts": inner, **arguments} if thoughts else dict(arguments)
            text = json.dumps({"function": name, "params": params}, ensure_ascii=False, indent=2)
            samples.append(SampleCall(name, arguments, inner if thoughts else None, after_prompt(prompt, text)))
        return samples

    def test_module_imports_nothing_heavy(self, wrapper: Wrapper) -> None:
        assert_light_import(wrapper.module)

    def test_prompt_is_text(self, prompt: str) -> None:
        assert isinstance(prompt, str) and prompt.strip()

    def test_prompt_renders_the_system_message(self, prompt: str) -> None:
        assert SYSTEM_MARKER in prompt

    def test_prompt_renders_the_core_memory_snapshot(self, wrapper: Wrapper) -> None:
        # The agent sends core memory as a second system message; a wrapper that takes one gets it folded in.
        messages = [SAMPLE_MESSAGES[0], {"role": "system", "content": SNAPSHOT_MARKER}, *SAMPLE_MESSAGES[1:]]
        assert SNAPSHOT_MARKER in wrapper.prompt(messages, list(SAMPLE_FUNCTIONS))

    def test_prompt_renders_the_user_event(self, prompt: str) -> None:
        assert USER_MARKER in prompt

    def test_prompt_renders_the_assistant_call_with_its_inner_thoughts(self, prompt: str) -> None:
        assert THOUGHT_MARKER in prompt, "the assistant's inner thoughts are missing"
        assert REPLY_MARKER in prompt, "the assistant's function call arguments are missing"

    def test_prompt_renders_the_function_return(self, prompt: str) -> None:
        assert RETURN_MARKER in prompt

    def test_prompt_describes_every_function(self, prompt: str) -> None:
        for function in SAMPLE_FUNCTIONS:
            assert function["name"] in prompt
            assert function["description"] in prompt, f"the description of {function['name']} is missing"
            for param in function["parameters"]["properties"]:
                assert param in prompt, f"parameter {param} of {function['name']} is missing"

    def test_first_message_prompt_is_text(self, wrapper: Wrapper) -> None:
        prompt = wrapper.prompt(list(SAMPLE_MESSAGES[:2]), list(SAMPLE_FUNCTIONS), first_message=True)
        assert isinstance(prompt, str) and USER_MARKER in prompt

    def test_has_stop_sequences(self, wrapper: Wrapper) -> None:
        # The wrapper's own, or the common turn markers core supplies for a class that declares none.
        assert wrapper.stop_sequences and all(isinstance(s, str) and s for s in wrapper.stop_sequences)

    def test_well_formed_calls_round_trip(self, wrapper: Wrapper, prompt: str) -> None:
        for sample in self.sample_calls(wrapper, prompt):
            call = wrapper.parse(sample.raw, list(SAMPLE_FUNCTIONS))
            assert call.name == sample.name
            assert call.arguments == sample.arguments
            assert call.inner_thoughts == sample.inner_thoughts

    def test_a_call_missing_a_required_argument_is_refused(self, wrapper: Wrapper, prompt: str) -> None:
        text = json.dumps({"function": "archival_memory_search", "params": {"inner_thoughts": "hm", "page": 1}})
        with pytest.raises(ParseError):
            wrapper.parse(after_prompt(prompt, text), list(SAMPLE_FUNCTIONS))

    @pytest.mark.parametrize("garbage", ["", "   \n", "}{ ::: ]]] ;; ((", "<|im_end|>"])
    def test_garbage_raises_parse_error(self, wrapper: Wrapper, prompt: str, garbage: str) -> None:
        with pytest.raises(ParseError) as caught:
            wrapper.parse(garbage, list(SAMPLE_FUNCTIONS))
        assert isinstance(caught.value.raw, str)
        assert garbage.strip() in caught.value.raw, "ParseError.raw must carry the model's text"


def after_prompt(prompt: str, text: str) -> str:
    """``text`` less the part the prompt already wrote (a primed opening such as ``{"function":``): the longest head
    of ``text`` that the prompt ends with, comparing without whitespace."""
    tail = "".join(prompt[-200:].split())
    for cut in range(len(text), 0, -1):
        head = "".join(text[:cut].split())
        if head and tail.endswith(head):
            return text[cut:]
    return text


# -- grammar providers ----------------------------------------------------------------------------------------------


class GrammarConformance:
    """Checks a ``memgpt_core.grammar.GrammarProvider`` subclass. Set ``grammar_class``."""

    grammar_class: ClassVar[type[GrammarProvider]]

    @pytest.fixture
    def provider(self) -> GrammarProvider:
        return self.grammar_class()

    def test_is_a_grammar_provider(self) -> None:
        assert isinstance(self.grammar_class, type) and issubclass(self.grammar_class, GrammarProvider)

    def test_declares_name_and_formats(self) -> None:
        assert isinstance(getattr(self.grammar_class, "name", None), str) and self.grammar_class.name
        formats = self.grammar_class.formats
        assert formats and set(formats) <= GRAMMAR_FORMATS, f"formats must be among {sorted(GRAMMAR_FORMATS)}"

    def test_module_imports_nothing_heavy(self) -> None:
        assert_light_import(self.grammar_class.__module__)

    @pytest.mark.parametrize("inner_thoughts", [True, False])
    def test_builds_every_declared_format(self, provider: GrammarProvider, inner_thoughts: bool) -> None:
        for fmt in sorted(self.grammar_class.formats):
            text = provider.build(list(SAMPLE_FUNCTIONS), format=fmt, inner_thoughts_in_params=inner_thoughts)
            assert isinstance(text, str) and text.strip()
            for function in SAMPLE_FUNCTIONS:
                assert function["name"] in text, f"{fmt} grammar does not mention {function['name']}"
            if fmt == "json_schema":
                assert isinstance(json.loads(text), dict), "a json_schema grammar is a JSON object"
            else:
                assert "root" in text and "::=" in text, "a GBNF grammar defines a root rule"

    def test_takes_a_string_cap_and_a_token_budget(self, provider: GrammarProvider) -> None:
        # The agent always passes both: a provider whose build() does not take them gets no grammar at all.
        for fmt in sorted(self.grammar_class.formats):
            text = provider.build(list(SAMPLE_FUNCTIONS), format=fmt, max_string_length=600, max_tokens=256)
            assert isinstance(text, str) and text.strip()


__all__ = [
    "HEAVY_MODULES",
    "SAMPLE_FUNCTIONS",
    "SAMPLE_MESSAGES",
    "BackendConformance",
    "GrammarConformance",
    "SampleCall",
    "WrapperConformance",
    "assert_light_import",
    "closed_port",
]
