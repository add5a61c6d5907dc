"""The Airoboros 2.1 wrappers: the exact prompt for a conversation with every role, and the conformance kit."""

from __future__ import annotations

import pytest

from memgpt_core import plugins
from memgpt_core.errors import ParseError
from memgpt_core.testing import GOLDEN_ANSWER, GOLDEN_FUNCTIONS, GOLDEN_MESSAGES, GOLDEN_SYSTEM, WrapperConformance

FUNCTIONS, MESSAGES = GOLDEN_FUNCTIONS, GOLDEN_MESSAGES

GOLDEN_TURNS = (
    GOLDEN_SYSTEM + "\n"
    "\n"
    "SYSTEM: Core memory: the human is called Chad.\n"
    'USER: {"type": "user_message", "message": "Hi, I am Chad.", "time": "2024-01-01 10:00"}\n'
    "ASSISTANT: " + GOLDEN_ANSWER + "\n"
    'FUNCTION RESULT (send_message): {"status": "OK", "message": null, "time": "2024-01-01 10:00"}\n'
    "SYSTEM: Warning: the context is 75% full.\n"
    "ASSISTANT:"
)


def test_plain_prompt_is_exactly_this_and_primes_the_call():
    wrapper = plugins.get_wrapper("airoboros-l2-70b-2.1")
    assert wrapper.prompt(MESSAGES, FUNCTIONS) == GOLDEN_TURNS + ' {"function":'
    assert wrapper.grammar is None


def test_grammar_prompt_is_the_same_without_priming_and_asks_for_the_grammar():
    wrapper = plugins.get_wrapper("airoboros-l2-70b-2.1-grammar")
    assert wrapper.prompt(MESSAGES, FUNCTIONS) == GOLDEN_TURNS
    assert wrapper.grammar == "function-call"
    assert "function-call" in plugins.get_grammars()


def test_without_a_system_message_the_airoboros_preamble_is_used():
    prompt = plugins.get_wrapper("airoboros-l2-70b-2.1-grammar").prompt(MESSAGES[2:3], FUNCTIONS)
    assert prompt.startswith("A chat.\n\nReply to every turn")


def test_stop_sequences_end_every_turn_label_the_prompt_uses():
    wrapper = plugins.get_wrapper("airoboros-l2-70b-2.1")
    for label in ("\nUSER:", "\nASSISTANT:", "\nFUNCTION RESULT", "\nSYSTEM:", "</s>"):
        assert label in wrapper.stop_sequences


def test_the_plain_answer_is_read_after_the_primed_opening():
    wrapper = plugins.get_wrapper("airoboros-l2-70b-2.1")
    call = wrapper.parse(
        ' "conversation_search",\n  "params": {"inner_thoughts": "Look back.", "query": "Chad"}\n}\nUSER',
        FUNCTIONS,
    )
    assert (call.name, call.arguments, call.inner_thoughts) == ("conversation_search", {"query": "Chad"}, "Look back.")


def test_a_function_not_offered_is_refused():
    wrapper = plugins.get_wrapper("airoboros-l2-70b-2.1-grammar")
    with pytest.raises(ParseError) as caught:
        wrapper.parse('{"function": "conversation_search", "params": {"query": "x"}}', FUNCTIONS[:1])
    assert "send_message" in caught.value.reason


class TestAiroborosConformance(WrapperConformance):
    wrapper_name = "airoboros-l2-70b-2.1"


class TestAiroborosGrammarConformance(WrapperConformance):
    wrapper_name = "airoboros-l2-70b-2.1-grammar"
