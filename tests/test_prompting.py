"""The prompt pieces wrappers share: the function list and earlier calls written back in the call shape."""

from __future__ import annotations

import json

from memgpt_core.prompting import ANSWER_OPENING, assistant_text, call_instructions, call_text, describe_functions
from memgpt_core.repair import parse_function_call
from memgpt_core.testing import GOLDEN_ANSWER, GOLDEN_FUNCTIONS, GOLDEN_MESSAGES, GOLDEN_SYSTEM

APPEND = {
    "name": "core_memory_append",
    "description": "Add a line to a core memory block.",
    "parameters": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": ["persona", "human"]},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "Labels."},
            "request_heartbeat": {"type": "boolean"},
        },
        "required": ["name"],
    },
}


def test_functions_are_described_one_line_per_parameter_with_type_and_required():
    assert describe_functions([{"type": "function", "function": APPEND}]) == (
        "core_memory_append: Add a line to a core memory block.\n"
        '  name (one of "persona", "human", required)\n'
        "  tags (array of string): Labels.\n"
        "  request_heartbeat (boolean)"
    )


def test_send_message_is_mentioned_only_when_offered():
    assert "send_message" not in call_instructions([APPEND])


def test_a_written_back_call_is_read_back_as_the_same_call():
    text = call_text("core_memory_append", '{"name": "human", "request_heartbeat": true}', "Save it.")
    assert text.startswith(ANSWER_OPENING)
    call = parse_function_call(text, [APPEND])
    assert (call.name, call.arguments, call.inner_thoughts) == (
        "core_memory_append",
        {"name": "human", "request_heartbeat": True},
        "Save it.",
    )


def test_thoughts_go_first_in_params():
    params = json.loads(call_text("f", {"a": 1, "inner_thoughts": "old"}, "new"))["params"]
    assert list(params) == ["inner_thoughts", "a"] and params["inner_thoughts"] == "new"


def test_arguments_that_are_not_json_are_kept_as_written():
    assert json.loads(call_text("f", "not json", None))["params"] == "not json"


def test_thoughts_before_the_json_when_not_in_params():
    assert call_text("f", {"a": 1}, "Hmm.", inner_thoughts_in_params=False).startswith("Hmm.\n{")


def test_assistant_turns_with_tool_calls_or_plain_text():
    tool = {"role": "assistant", "content": "T.", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}
    assert json.loads(assistant_text(tool)) == {"function": "f", "params": {"inner_thoughts": "T."}}
    assert assistant_text({"role": "assistant", "content": "Just words."}) == "Just words."


def test_the_golden_texts_wrapper_plugins_share_are_what_core_writes():
    """memgpt_core.testing's GOLDEN_SYSTEM and GOLDEN_ANSWER are literals the wrapper plugins' exact-prompt tests
    build on; they must stay what core's prompt code writes for GOLDEN_MESSAGES and GOLDEN_FUNCTIONS."""
    assert f"{GOLDEN_MESSAGES[0]['content']}\n\n{call_instructions(GOLDEN_FUNCTIONS)}" == GOLDEN_SYSTEM
    answer = next(m for m in GOLDEN_MESSAGES if m["role"] == "assistant")
    assert assistant_text(answer) == GOLDEN_ANSWER
