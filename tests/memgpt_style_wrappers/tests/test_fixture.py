"""The fixture's own tests: it behaves as MemGPT 0.3's wrappers do, including where they fail."""

import importlib.util
import inspect
import json
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("memgpt_style_wrappers") is None:  # not pip-installed: use the source next to us
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memgpt_style_wrappers import (
    AiroborosStyleWrapper,
    ChatMLStyleWrapper,
    LLMChatCompletionWrapper,
    LLMJSONParsingError,
    ZephyrStyleWrapper,
    get_available_wrappers,
    register_wrappers,
)

FUNCTIONS = [
    {
        "name": "send_message",
        "description": "Send a message to the user.",
        "parameters": {
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "What to say."},
                "request_heartbeat": {"type": "boolean", "description": "Ask for a follow-up turn."},
            },
            "required": ["message"],
        },
    }
]
MESSAGES = [
    {"role": "system", "content": "You are Sam."},
    {"role": "user", "content": json.dumps({"type": "user_message", "message": "hi there"})},
    {
        "role": "assistant",
        "content": "Greet them.",
        "function_call": {"name": "send_message", "arguments": json.dumps({"message": "Hello!"})},
    },
    {"role": "function", "content": json.dumps({"status": "OK", "message": None})},
]
GOOD = json.dumps(
    {"function": "send_message", "params": {"inner_thoughts": "Say hi.", "message": "Hi!", "request_heartbeat": True}}
)
ALL = [ChatMLStyleWrapper, AiroborosStyleWrapper, ZephyrStyleWrapper]


@pytest.mark.parametrize("cls", ALL)
def test_memgpt_shape(cls):
    wrapper = cls()
    assert isinstance(wrapper, LLMChatCompletionWrapper)
    for attr in ("name", "stop_sequences", "grammar"):
        assert not hasattr(wrapper, attr)
    assert "function_documentation" in inspect.signature(wrapper.chat_completion_to_prompt).parameters


@pytest.mark.parametrize("cls", ALL)
def test_prompt_renders_the_conversation(cls):
    prompt = cls().chat_completion_to_prompt(MESSAGES, FUNCTIONS)
    assert "You are Sam." in prompt and "send_message:" in prompt and "hi there" in prompt
    assert '"Hello!"' in prompt and '"Greet them."' in prompt


@pytest.mark.parametrize("cls", ALL)
def test_function_documentation_replaces_the_listing(cls):
    prompt = cls().chat_completion_to_prompt(MESSAGES, FUNCTIONS, function_documentation="DOCS-FROM-GRAMMAR")
    assert "DOCS-FROM-GRAMMAR" in prompt and "send_message:" not in prompt


@pytest.mark.parametrize("cls", ALL)
def test_second_system_message_is_an_assertion_error(cls):
    with pytest.raises(AssertionError):
        cls().chat_completion_to_prompt([*MESSAGES, {"role": "system", "content": "alert"}], FUNCTIONS)
    with pytest.raises(AssertionError):
        cls().chat_completion_to_prompt(MESSAGES[1:], FUNCTIONS)


@pytest.mark.parametrize("cls", [AiroborosStyleWrapper, ZephyrStyleWrapper])
def test_first_message_is_a_type_error_without_supports_first_message(cls):
    wrapper = cls()
    assert not hasattr(wrapper, "supports_first_message")
    with pytest.raises(TypeError):
        wrapper.chat_completion_to_prompt(MESSAGES, FUNCTIONS, first_message=True)
    with pytest.raises(TypeError):
        wrapper.output_to_chat_completion_response(GOOD, first_message=True)


def test_chatml_primes_the_reply_and_puts_the_prefix_back():
    wrapper = ChatMLStyleWrapper()
    assert wrapper.chat_completion_to_prompt(MESSAGES, FUNCTIONS).endswith('<|im_start|>assistant\n{\n  "function":')
    first = wrapper.chat_completion_to_prompt(MESSAGES, FUNCTIONS, first_message=True)
    assert first.endswith('"function": "send_message",')
    reply = wrapper.output_to_chat_completion_response(' "send_message", "params": {"message": "Yo"}}')
    assert reply["function_call"] == {"name": "send_message", "arguments": '{"message": "Yo"}'}
    reply = wrapper.output_to_chat_completion_response('\n  "params": {"message": "Yo"}}', first_message=True)
    assert reply["function_call"]["name"] == "send_message"
    repeated = wrapper.output_to_chat_completion_response(GOOD, first_message=True)  # prefix + whole object again
    assert repeated["content"] == "Say hi." and json.loads(repeated["function_call"]["arguments"]) == {"message": "Hi!"}


@pytest.mark.parametrize("name", sorted(get_available_wrappers()))
def test_good_output_parses(name):
    wrapper = get_available_wrappers()[name]
    if name.endswith("-grammar"):  # what MemGPT's proxy does for grammar names
        wrapper.assistant_prefix_extra = wrapper.assistant_prefix_extra_first_message = ""
    assert wrapper.output_to_chat_completion_response(GOOD) == {
        "role": "assistant",
        "content": "Say hi.",
        "function_call": {"name": "send_message", "arguments": '{"message": "Hi!"}'},
    }


@pytest.mark.parametrize("name", ["memgpt-chatml-grammar", "memgpt-airoboros-grammar", "memgpt-zephyr"])
def test_lenient_reading_only_where_memgpt_is_lenient(name):
    wrapper = get_available_wrappers()[name]
    wrapper.assistant_prefix_extra = wrapper.assistant_prefix_extra_first_message = ""
    truncated = '{"function": "send_message", "params": {"inner_thoughts": "x", "message": "cut off'
    assert json.loads(wrapper.output_to_chat_completion_response(truncated)["function_call"]["arguments"]) == {
        "message": "cut off"
    }
    chatter = GOOD + "\nHope that helps!"
    assert wrapper.output_to_chat_completion_response(chatter)["content"] == "Say hi."


@pytest.mark.parametrize("cls", ALL)
def test_required_arguments_are_not_checked(cls):
    reply = cls().output_to_chat_completion_response('{"function": "send_message", "params": {}}')
    assert reply["function_call"] == {"name": "send_message", "arguments": "{}"}


@pytest.mark.parametrize("name", sorted(get_available_wrappers()))
@pytest.mark.parametrize("missing", ['{"function": "send_message"}', '{"params": {"message": "hi"}}'])
def test_missing_function_or_params_raises_the_package_error(name, missing):
    with pytest.raises(LLMJSONParsingError) as info:
        get_available_wrappers()[name].output_to_chat_completion_response(missing)
    assert isinstance(info.value.__cause__, KeyError)
    assert not isinstance(info.value, KeyError)


def test_empty_output_raises_as_memgpt_does():
    with pytest.raises(IndexError):
        ZephyrStyleWrapper().output_to_chat_completion_response("")
    for name in ("memgpt-chatml", "memgpt-chatml-grammar", "memgpt-airoboros-grammar", "memgpt-zephyr-grammar"):
        with pytest.raises(Exception, match="not decodable JSON"):
            get_available_wrappers()[name].output_to_chat_completion_response("")


def test_registration_is_of_instances_made_memgpt_style():
    calls = []
    register_wrappers(lambda obj, *, name=None, aliases=(): calls.append((name, obj)))
    assert [name for name, _ in calls] == [
        "memgpt-chatml",
        "memgpt-chatml-grammar",
        "memgpt-airoboros",
        "memgpt-airoboros-grammar",
        "memgpt-zephyr",
        "memgpt-zephyr-grammar",
    ]
    table = dict(calls)
    assert all(not isinstance(obj, type) for obj in table.values())
    assert table["memgpt-airoboros-grammar"].assistant_prefix_extra is None
    assert table["memgpt-zephyr-grammar"].include_opening_brance_in_prefix is False
    assert table["memgpt-chatml-grammar"].assistant_prefix_extra == table["memgpt-chatml"].assistant_prefix_extra
