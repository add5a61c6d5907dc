"""The auto wrappers: real chat templates of several model families (tests/templates/*.json, kept in the shape of a
tokenizer_config.json) render a whole agent conversation, keep earlier turns byte for byte, refuse what they cannot
render with a ConfigError; the conformance kit; and a comparison with llama-server's own rendering."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from memgpt_wrappers_auto.wrappers import AutoGrammarWrapper, AutoWrapper, Layout

from memgpt_core import plugins
from memgpt_core.backend import ChatTemplate
from memgpt_core.errors import ConfigError
from memgpt_core.prompting import ANSWER_OPENING, assistant_text, call_instructions
from memgpt_core.testing import WrapperConformance
from memgpt_core.wrapper import Wrapper

TEMPLATES = Path(__file__).parent / "templates"


def load(family: str) -> ChatTemplate:
    config = json.loads((TEMPLATES / f"{family}.json").read_text(encoding="utf-8"))
    return ChatTemplate(config["chat_template"], config["bos_token"] or "", config["eos_token"] or "")


def fitted(template: ChatTemplate, cls: type[AutoWrapper] = AutoGrammarWrapper) -> Wrapper:
    """The wrapper as core hands it out, after core gave it the template (what Wrapper.fit_to does)."""
    wrapper = cls()
    wrapper.use_chat_template(template)
    return Wrapper(wrapper, name=cls.name)


SYSTEM = "You are Sam, a companion whose memory outlives this conversation. Keep replies short."
SNAPSHOT = (
    "### Core memory (as of 2024-05-01 09:00 UTC)\n"
    "<persona>\nI am Sam. I like puns.\n</persona>\n"
    "<human>\nFirst name: Chad\n</human>\n"
    "Recall memory: 4 messages (conversation_search). Archival memory: 0 passages (archival_memory_search)."
)
FUNCTIONS: list[dict[str, Any]] = [
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
        "name": "archival_memory_search",
        "description": "Search archival memory by meaning.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "request_heartbeat": {"type": "boolean"}},
            "required": ["query"],
        },
    },
    {
        "name": "core_memory_append",
        "description": "Add a line to a block of core memory.",
        "parameters": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": ["persona", "human"]},
                "content": {"type": "string"},
                "request_heartbeat": {"type": "boolean"},
            },
            "required": ["name", "content"],
        },
    },
]


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": json.dumps({"type": kind, **fields, "time": "09:01"}, ensure_ascii=False)}


def call(function: str, thoughts: str, **arguments: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": thoughts,
        "function_call": {"name": function, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def result(name: str, message: str | None) -> dict[str, Any]:
    return {"role": "function", "name": name, "content": json.dumps({"status": "OK", "message": message})}


CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
    {"role": "system", "content": SNAPSHOT},
    event("login", last_login="never"),
    call("send_message", "A new user. Say hello.", message="Hello! I'm Sam."),
    event("user_message", message="Hi Sam, I'm Chad. Do you remember my favourite colour?"),
    call("archival_memory_search", "Let me check my notes.", query="favourite colour", request_heartbeat=True),
    result("archival_memory_search", "No results found."),
    event("heartbeat", reason="[This is an automated system message hidden from the user] Function called."),
    call("send_message", "Nothing stored; ask him. Ça va?", message="I don't know yet. What is it? 🙂"),
    event("user_message", message="Blue. Please remember it."),
    call("core_memory_append", "Save it.", name="human", content="Favourite colour: blue", request_heartbeat=True),
    result("core_memory_append", "human: First name: Chad\nFavourite colour: blue"),
    {"role": "system", "content": "Warning: the context is 75% full."},
    event(
        "system_alert",
        message="Note: 9 older messages were summarised, still in recall memory: Chad said hello, likes blue.",
    ),
    event("user_message", message="What's my favourite colour?"),
]
FIRST_TURN = 2  # the index of the first message after the two system messages
# The lengths of the conversations the agent sends a prompt for: each ends with a user event, a result or an alert.
AGENT_ENDS = [
    end for end in range(FIRST_TURN + 1, len(CONVERSATION) + 1) if CONVERSATION[end - 1]["role"] != "assistant"
]


def turn_text(message: dict[str, Any]) -> str:
    """The text a message becomes in the folded conversation."""
    role = message["role"]
    if role == "assistant":
        return assistant_text(message)
    if role == "function":
        return f"Result of {message['name']}: {message['content']}"
    if role == "system":
        return json.dumps({"type": "system_alert", "message": message["content"]}, ensure_ascii=False)
    return message["content"]


# family: (how its prompt starts once the BOS token is left to the server, its assistant opening, the layout it takes,
#          where a turn ends when messages are not merged)
SYSTEM_FIRST = Layout(system_role=True, merge=False)
IN_USER_ALTERNATING = Layout(system_role=False, merge=True)
FAMILIES: dict[str, tuple[str, str, Layout, str | None]] = {
    "llama3": (
        "<|start_header_id|>system<|end_header_id|>\n\n",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        SYSTEM_FIRST,
        "<|eot_id|>",
    ),
    "mistral-v0.2": ("[INST] ", " [/INST]", IN_USER_ALTERNATING, None),
    "mistral-v0.3": ("[INST] ", "[/INST]", IN_USER_ALTERNATING, None),
    "zephyr": ("<|system|>\n", "<|assistant|>\n", SYSTEM_FIRST, "</s>\n"),
    "gemma": ("<start_of_turn>user\n", "<start_of_turn>model\n", IN_USER_ALTERNATING, None),
    "phi3": ("<|system|>\n", "<|assistant|>\n", SYSTEM_FIRST, "<|end|>\n"),
    "qwen2": ("<|im_start|>system\n", "<|im_start|>assistant\n", SYSTEM_FIRST, "<|im_end|>\n"),
    "qwen3": ("<|im_start|>system\n", "<|im_start|>assistant\n", SYSTEM_FIRST, "<|im_end|>\n"),
    "smollm2": ("<|im_start|>system\n", "<|im_start|>assistant\n", SYSTEM_FIRST, "<|im_end|>\n"),
}
QWEN3_EMPTY_THINKING = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def families() -> dict[str, Wrapper]:
    return {family: fitted(load(family)) for family in FAMILIES}


# -- every family renders the whole agent conversation ---------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_the_template_takes_the_layout_its_probes_found(family, families):
    assert families[family]._wrapped.layout == FAMILIES[family][2]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_whole_conversation_renders_with_every_message_in_it(family, families):
    start, opening, _, _ = FAMILIES[family]
    prompt = families[family].prompt(CONVERSATION, FUNCTIONS)
    assert prompt.startswith(start), "the prompt opens with the template's first turn, the BOS token left to the server"
    assert prompt.endswith(opening), "the prompt ends with the family's assistant opening"
    for text in (SYSTEM, SNAPSHOT, call_instructions(FUNCTIONS)):
        assert text in prompt
    for message in CONVERSATION[FIRST_TURN:]:
        assert turn_text(message) in prompt, f"the {message['role']} message is missing"
    # The system text comes once, in order: instructions, function instructions, then the snapshot.
    assert prompt.count(SYSTEM) == 1
    assert prompt.index(SYSTEM) < prompt.index("Functions:\nsend_message") < prompt.index(SNAPSHOT)
    assert prompt.index(SNAPSHOT) < prompt.index(turn_text(CONVERSATION[FIRST_TURN]))


@pytest.mark.parametrize("family", FAMILIES)
def test_the_plain_variant_primes_the_call_after_the_same_turns(family):
    plain = fitted(load(family), AutoWrapper)
    grammar = fitted(load(family), AutoGrammarWrapper)
    assert plain.prompt(CONVERSATION, FUNCTIONS) == grammar.prompt(CONVERSATION, FUNCTIONS) + ANSWER_OPENING
    assert (plain.grammar, grammar.grammar) == (None, "function-call")


def stable_end(prompt: str, message: dict[str, Any], turn_end: str | None) -> int:
    """Where ``message``, the newest in ``prompt``, ends (with its closing marker when nothing is merged)."""
    last = turn_text(message)
    end = prompt.rfind(last)
    assert end >= 0
    end += len(last)
    if turn_end is not None:
        assert prompt[end:].startswith(turn_end)
        end += len(turn_end)
    return end


@pytest.mark.parametrize("family", FAMILIES)
def test_every_earlier_turn_stays_byte_for_byte_as_the_conversation_grows(family, families):
    """The prompt of a conversation begins with the prompt of the same conversation one message shorter, up to where
    that conversation's last message ends (and, where nothing is merged, its closing marker too): the server's prompt
    cache reuses all of it.

    One exception, the template's own: Qwen3 writes an empty thinking block into the assistant turn that ends a
    conversation, and leaves it out once a user turn follows. The agent never sends a prompt that ends with the
    assistant's turn, so every prompt it does send still keeps the previous one (the next test)."""
    wrapper = families[family]
    turn_end = FAMILIES[family][3]
    previous = None
    for end in range(FIRST_TURN + 1, len(CONVERSATION) + 1):
        prompt = wrapper.prompt(CONVERSATION[:end], FUNCTIONS)
        if previous is not None:
            last = CONVERSATION[end - 2]
            if family == "qwen3" and last["role"] == "assistant":
                assert QWEN3_EMPTY_THINKING + turn_text(last) + "<|im_end|>\n" in previous
                assert QWEN3_EMPTY_THINKING not in prompt
            else:
                stable = stable_end(previous, last, turn_end)
                assert prompt[:stable] == previous[:stable], f"message {end - 1} rewrote an earlier turn"
        previous = prompt


@pytest.mark.parametrize("family", FAMILIES)
def test_every_prompt_the_agent_sends_keeps_the_one_before_it(family, families):
    """The same, between the prompts the agent sends: each ends with a user event, a function result or an alert."""
    wrapper = families[family]
    turn_end = FAMILIES[family][3]
    for before, after in itertools.pairwise(AGENT_ENDS):
        previous = wrapper.prompt(CONVERSATION[:before], FUNCTIONS)
        prompt = wrapper.prompt(CONVERSATION[:after], FUNCTIONS)
        stable = stable_end(previous, CONVERSATION[before - 1], turn_end)
        assert prompt[:stable] == previous[:stable], f"messages {before} to {after - 1} rewrote an earlier turn"


@pytest.mark.parametrize("family", ["gemma", "mistral-v0.2", "mistral-v0.3"])
def test_templates_that_insist_on_alternation_get_alternating_user_and_assistant(family, families):
    wrapper = families[family]._wrapped
    answers = {i: wrapper.assistant_text(m) for i, m in enumerate(CONVERSATION) if m["role"] == "assistant"}
    roles = [m["role"] for m in wrapper.fold(CONVERSATION, call_instructions(FUNCTIONS), answers)]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (len(roles) % 2)
    assert roles[-1] == "user"


def test_gemma_gets_the_system_text_in_the_first_user_turn_and_results_joined_to_the_next_user_turn():
    prompt = fitted(load("gemma")).prompt(
        [
            {"role": "system", "content": "Be Sam."},
            {"role": "system", "content": "Core: Chad."},
            event("user_message", message="hi"),
            call("archival_memory_search", "Look.", query="hi"),
            result("archival_memory_search", None),
            event("heartbeat", reason="go on"),
        ],
        FUNCTIONS[1:2],
    )
    instructions = call_instructions(FUNCTIONS[1:2])
    assert prompt == (
        f"<start_of_turn>user\nBe Sam.\n\n{instructions}\n\nCore: Chad.\n\n"
        '{"type": "user_message", "message": "hi", "time": "09:01"}<end_of_turn>\n'
        "<start_of_turn>model\n"
        '{"function": "archival_memory_search", "params": {"inner_thoughts": "Look.", "query": "hi"}}<end_of_turn>\n'
        '<start_of_turn>user\nResult of archival_memory_search: {"status": "OK", "message": null}\n\n'
        '{"type": "heartbeat", "reason": "go on", "time": "09:01"}<end_of_turn>\n'
        "<start_of_turn>model\n"
    )


def test_the_bos_token_is_left_out_only_where_the_template_writes_it():
    llama3 = fitted(load("llama3")).prompt(CONVERSATION[:3], FUNCTIONS)
    assert not llama3.startswith("<|begin_of_text|>") and "<|begin_of_text|>" not in llama3
    # SmolLM2's BOS string is <|im_start|>, which its template writes as the opening of every turn, never as a BOS.
    smollm2 = fitted(load("smollm2")).prompt(CONVERSATION[:3], FUNCTIONS)
    assert smollm2.startswith("<|im_start|>system\n" + SYSTEM)


def test_a_prompt_with_only_the_system_messages_renders():
    # The agent measures the prompt of an empty conversation when the context is too small.
    for family in ("llama3", "gemma", "mistral-v0.3"):
        prompt = fitted(load(family)).prompt(CONVERSATION[:FIRST_TURN], FUNCTIONS)
        assert SYSTEM in prompt and SNAPSHOT in prompt


def test_hugging_face_template_helpers_are_there():
    source = (
        "{% for message in messages %}{% generation %}{{ message['role'] }}: {{ message['content'] }}\n"
        "{% endgeneration %}{% if loop.index > 99 %}{% break %}{% endif %}{% endfor %}"
        "{{ {'now': strftime_now('%Y') | length, 'quote': '<&>'} | tojson }}\n"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    prompt = fitted(ChatTemplate(source)).prompt(CONVERSATION[:4], FUNCTIONS)
    assert '{"now": 4, "quote": "<&>"}\nassistant: ' in prompt
    assert prompt.startswith("system: " + SYSTEM)


# -- what cannot work is a ConfigError naming the alternatives ------------------------------------------------------

ALTERNATIVES = ("chatml", "llama3", "zephyr-7B", "airoboros-l2-70b-2.1", "chatml-grammar", "zephyr-7B-grammar")


def assert_names_alternatives(error: ConfigError) -> None:
    assert error.fix and all(name in error.fix for name in ALTERNATIVES), error.fix


@pytest.mark.parametrize("template", [None, ChatTemplate(""), ChatTemplate("  \n")])
def test_no_template_is_a_config_error_naming_other_wrappers(template):
    with pytest.raises(ConfigError, match="no chat template is available") as caught:
        AutoWrapper().use_chat_template(template)
    assert_names_alternatives(caught.value)


def test_fit_to_a_backend_that_cannot_read_templates_is_the_same_config_error():
    backend = SimpleNamespace(capabilities=SimpleNamespace(chat_template=False))
    with pytest.raises(ConfigError, match="no chat template is available"):
        Wrapper.make(AutoWrapper, name="auto").fit_to(backend)


def test_fit_to_hands_the_backends_template_over():
    backend = SimpleNamespace(capabilities=SimpleNamespace(chat_template=True), chat_template=lambda: load("gemma"))
    wrapper = Wrapper.make(AutoGrammarWrapper, name="auto-grammar")
    wrapper.fit_to(backend)
    assert wrapper.prompt(CONVERSATION, FUNCTIONS).startswith("<start_of_turn>user\n" + SYSTEM)


def test_a_template_that_does_not_compile_is_a_config_error_saying_why():
    broken = "{% for message in messages %}{{ message['content'] }}"  # no endfor
    with pytest.raises(ConfigError) as caught:
        AutoWrapper().use_chat_template(ChatTemplate(broken))
    message = caught.value.message
    assert "does not compile" in message and "TemplateSyntaxError" in message and "endfor" in message
    assert "\n" not in message
    assert_names_alternatives(caught.value)


def test_a_template_that_always_raises_is_a_config_error_in_its_own_words():
    refusing = "{{ raise_exception('This model only answers to its maker.') }}"
    with pytest.raises(ConfigError) as caught:
        AutoWrapper().use_chat_template(ChatTemplate(refusing))
    assert "fails for every message layout" in caught.value.message
    assert "This model only answers to its maker." in caught.value.message
    assert_names_alternatives(caught.value)


def test_a_template_that_drops_messages_is_refused():
    # Renders without error, but only the last message: nothing the agent sent earlier would reach the model.
    lossy = "{{ messages[-1]['content'] }}{% if add_generation_prompt %}\nassistant:{% endif %}"
    with pytest.raises(ConfigError, match="leaves part of the conversation out"):
        AutoWrapper().use_chat_template(ChatTemplate(lossy))


def test_a_prompt_before_any_template_is_a_config_error():
    with pytest.raises(ConfigError, match="no chat template yet"):
        Wrapper.make(AutoWrapper, name="auto").prompt(CONVERSATION, FUNCTIONS)


# -- registration and start-up cost ---------------------------------------------------------------------------------


def test_both_wrappers_are_registered_and_ask_for_the_template():
    plugins.reset()
    auto, grammar = plugins.get_wrapper("auto"), plugins.get_wrapper("auto-grammar")
    assert auto.needs_chat_template and grammar.needs_chat_template
    assert (auto.grammar, grammar.grammar) == (None, "function-call")
    assert {"<end_of_turn>", "<|eot_id|>", "<|im_end|>", "</s>"} <= set(auto.stop_sequences)


def test_registering_does_not_import_jinja():
    code = (
        "import sys, memgpt_wrappers_auto, memgpt_wrappers_auto.wrappers\n"
        "from memgpt_core import plugins\n"
        "plugins.get_wrappers()\n"
        "print('jinja2' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


# -- the conformance kit, with a template handed over first ---------------------------------------------------------


class TestAutoConformance(WrapperConformance):
    wrapper_class = AutoWrapper
    name = "auto"
    family = "smollm2"

    def make_wrapper(self) -> Wrapper:
        return fitted(load(self.family), self.wrapper_class)


class TestAutoGrammarConformanceWithGemma(TestAutoConformance):
    wrapper_class = AutoGrammarWrapper
    name = "auto-grammar"
    family = "gemma"


# -- against the real server -----------------------------------------------------------------------------------------


def test_the_prompt_is_what_llama_server_renders_from_the_same_messages(llama_server):
    """Read the template from GET /props (the fixture's copy), render the conversation with auto-grammar, and have the
    server render the same folded messages with POST /apply-template.

    Every prompt the agent sends (the conversation up to a user event, a function result or an alert) is the same,
    byte for byte. The one difference: for a conversation that ends with an assistant message, which the agent never
    sends, llama-server continues that message (its "assistant prefill") where the template opens a new turn; the
    server's text is then ours up to the end of that answer. (No BOS difference here: SmolLM2's BOS string is
    <|im_start|>, which its template never writes as a BOS, and the server adds no BOS for this model.)"""
    import requests

    props = llama_server.props
    source = props.get("chat_template")
    assert isinstance(source, str) and source.strip(), "GET /props reports no chat_template"
    template = ChatTemplate(source, props.get("bos_token") or "", props.get("eos_token") or "")
    inner = AutoGrammarWrapper()
    inner.use_chat_template(template)
    wrapper = Wrapper(inner, name="auto-grammar")
    instructions = call_instructions(FUNCTIONS)
    session = requests.Session()
    session.trust_env = False

    def compare(end: int) -> tuple[str, str]:
        conversation = CONVERSATION[:end]
        answers = {i: inner.assistant_text(m) for i, m in enumerate(conversation) if m["role"] == "assistant"}
        folded = inner.fold(conversation, instructions, answers)
        response = session.post(llama_server.url + "/apply-template", json={"messages": folded}, timeout=60)
        response.raise_for_status()
        return wrapper.prompt(conversation, FUNCTIONS), response.json()["prompt"]

    for end in AGENT_ENDS:
        ours, theirs = compare(end)
        assert ours == theirs, f"the conversation up to message {end - 1} renders differently"

    ours, theirs = compare(FIRST_TURN + 2)  # ends with the assistant's first call
    answer = inner.assistant_text(CONVERSATION[FIRST_TURN + 1])
    assert theirs == ours[: ours.rindex(answer) + len(answer)]
