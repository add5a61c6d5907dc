"""The Zephyr wrappers: the exact prompt for a conversation with every role, and the conformance kit."""

from __future__ import annotations

import pytest

from memgpt_core import plugins
from memgpt_core.testing import GOLDEN_ANSWER, GOLDEN_FUNCTIONS, GOLDEN_MESSAGES, GOLDEN_SYSTEM, WrapperConformance

FUNCTIONS, MESSAGES = GOLDEN_FUNCTIONS, GOLDEN_MESSAGES

GOLDEN_TURNS = (
    "<|system|>\n" + GOLDEN_SYSTEM + "</s>\n"
    "<|system|>\n"
    "Core memory: the human is called Chad.</s>\n"
    "<|user|>\n"
    '{"type": "user_message", "message": "Hi, I am Chad.", "time": "2024-01-01 10:00"}</s>\n'
    "<|assistant|>\n" + GOLDEN_ANSWER + "</s>\n"
    "<|system|>\n"
    'Result of send_message: {"status": "OK", "message": null, "time": "2024-01-01 10:00"}</s>\n'
    "<|system|>\n"
    "Warning: the context is 75% full.</s>\n"
    "<|assistant|>\n"
)


def test_plain_prompt_is_exactly_this_and_primes_the_call():
    wrapper = plugins.get_wrapper("zephyr-7B")
    assert wrapper.prompt(MESSAGES, FUNCTIONS) == GOLDEN_TURNS + '{"function":'
    assert wrapper.grammar is None


def test_grammar_prompt_is_the_same_without_priming_and_asks_for_the_grammar():
    wrapper = plugins.get_wrapper("zephyr-7B-grammar")
    assert wrapper.prompt(MESSAGES, FUNCTIONS) == GOLDEN_TURNS
    assert wrapper.grammar == "function-call"
    assert "function-call" in plugins.get_grammars()


def test_without_a_system_message_the_instructions_still_open_the_prompt():
    prompt = plugins.get_wrapper("zephyr-7B-grammar").prompt(MESSAGES[2:3], FUNCTIONS)
    assert prompt.startswith("<|system|>\nReply to every turn")


def test_the_function_result_is_not_a_user_turn():
    prompt = plugins.get_wrapper("zephyr-7B-grammar").prompt(MESSAGES, FUNCTIONS)
    assert "<|user|>\nResult of" not in prompt
    assert "<|system|>\nResult of send_message:" in prompt


@pytest.mark.parametrize("name", ["zephyr-7B", "zephyr-7B-grammar"])
def test_stop_sequences_end_the_turn(name):
    stops = plugins.get_wrapper(name).stop_sequences
    for marker in ("</s>", "<|user|>", "<|system|>", "<|assistant|>"):
        assert marker in stops


def test_the_plain_answer_is_read_after_the_primed_opening():
    wrapper = plugins.get_wrapper("zephyr-7B")
    call = wrapper.parse(
        ' "send_message",\n  "params": {\n    "inner_thoughts": "Answer.",\n    "message": "Sure."\n  }\n}',
        FUNCTIONS,
    )
    assert (call.name, call.arguments, call.inner_thoughts) == ("send_message", {"message": "Sure."}, "Answer.")


class TestZephyrConformance(WrapperConformance):
    wrapper_name = "zephyr-7B"


class TestZephyrGrammarConformance(WrapperConformance):
    wrapper_name = "zephyr-7B-grammar"
