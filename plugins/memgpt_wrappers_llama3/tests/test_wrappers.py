"""The Llama 3 wrappers: the exact prompt for a conversation with every role, and the conformance kit."""

from __future__ import annotations

import pytest

from memgpt_core import plugins
from memgpt_core.testing import GOLDEN_ANSWER, GOLDEN_FUNCTIONS, GOLDEN_MESSAGES, GOLDEN_SYSTEM, WrapperConformance

FUNCTIONS, MESSAGES = GOLDEN_FUNCTIONS, GOLDEN_MESSAGES

GOLDEN_TURNS = (
    "<|start_header_id|>system<|end_header_id|>\n"
    "\n" + GOLDEN_SYSTEM + "<|eot_id|>"
    "<|start_header_id|>system<|end_header_id|>\n"
    "\n"
    "Core memory: the human is called Chad.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n"
    "\n"
    '{"type": "user_message", "message": "Hi, I am Chad.", "time": "2024-01-01 10:00"}<|eot_id|>'
    "<|start_header_id|>assistant<|end_header_id|>\n"
    "\n" + GOLDEN_ANSWER + "<|eot_id|>"
    "<|start_header_id|>ipython<|end_header_id|>\n"
    "\n"
    'Result of send_message: {"status": "OK", "message": null, "time": "2024-01-01 10:00"}<|eot_id|>'
    "<|start_header_id|>system<|end_header_id|>\n"
    "\n"
    "Warning: the context is 75% full.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n"
    "\n"
)


def test_plain_prompt_is_exactly_this_and_primes_the_call():
    wrapper = plugins.get_wrapper("llama3")
    assert wrapper.prompt(MESSAGES, FUNCTIONS) == GOLDEN_TURNS + '{"function":'
    assert wrapper.grammar is None


def test_grammar_prompt_is_the_same_without_priming_and_asks_for_the_grammar():
    wrapper = plugins.get_wrapper("llama3-grammar")
    assert wrapper.prompt(MESSAGES, FUNCTIONS) == GOLDEN_TURNS
    assert wrapper.grammar == "function-call"
    assert "function-call" in plugins.get_grammars()


def test_the_bos_token_is_left_to_the_server():
    for name in ("llama3", "llama3-grammar"):
        assert "<|begin_of_text|>" not in plugins.get_wrapper(name).prompt(MESSAGES, FUNCTIONS)


def test_without_a_system_message_the_instructions_still_open_the_prompt():
    prompt = plugins.get_wrapper("llama3-grammar").prompt(MESSAGES[2:3], FUNCTIONS)
    assert prompt.startswith("<|start_header_id|>system<|end_header_id|>\n\nReply to every turn")


def test_turn_text_is_trimmed_as_the_official_template_does():
    messages = [{"role": "user", "content": "\n  hello there  \n"}]
    prompt = plugins.get_wrapper("llama3-grammar").prompt(messages, FUNCTIONS)
    assert "<|start_header_id|>user<|end_header_id|>\n\nhello there<|eot_id|>" in prompt


@pytest.mark.parametrize("name", ["llama3", "llama3-grammar"])
def test_stop_sequences_end_the_turn(name):
    stops = plugins.get_wrapper(name).stop_sequences
    assert "<|eot_id|>" in stops and "<|start_header_id|>" in stops


def test_the_plain_answer_is_read_after_the_primed_opening():
    wrapper = plugins.get_wrapper("llama3")
    call = wrapper.parse(
        ' "conversation_search",\n  "params": {"inner_thoughts": "Look back.", "query": "Chad"}\n}',
        FUNCTIONS,
    )
    assert (call.name, call.arguments, call.inner_thoughts) == ("conversation_search", {"query": "Chad"}, "Look back.")


class TestLlama3Conformance(WrapperConformance):
    wrapper_name = "llama3"


class TestLlama3GrammarConformance(WrapperConformance):
    wrapper_name = "llama3-grammar"
