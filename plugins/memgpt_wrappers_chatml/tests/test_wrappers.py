"""The ChatML and Dolphin wrappers: the exact prompt for a conversation with every role, the conformance kit, and
a real call from the SmolLM2 model (ChatML) through llama.cpp with the grammar."""

from __future__ import annotations

import pytest

from memgpt_core import plugins
from memgpt_core.testing import GOLDEN_ANSWER, GOLDEN_FUNCTIONS, GOLDEN_MESSAGES, GOLDEN_SYSTEM, WrapperConformance

FUNCTIONS, MESSAGES = GOLDEN_FUNCTIONS, GOLDEN_MESSAGES

GOLDEN_TURNS = (
    "<|im_start|>system\n" + GOLDEN_SYSTEM + "<|im_end|>\n"
    "<|im_start|>system\n"
    "Core memory: the human is called Chad.<|im_end|>\n"
    "<|im_start|>user\n"
    '{"type": "user_message", "message": "Hi, I am Chad.", "time": "2024-01-01 10:00"}<|im_end|>\n'
    "<|im_start|>assistant\n" + GOLDEN_ANSWER + "<|im_end|>\n"
    "<|im_start|>function\n"
    'Result of send_message: {"status": "OK", "message": null, "time": "2024-01-01 10:00"}<|im_end|>\n'
    "<|im_start|>system\n"
    "Warning: the context is 75% full.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
PLAIN = ["chatml", "dolphin-2.1-mistral-7b"]
GRAMMAR = ["chatml-grammar", "dolphin-2.1-mistral-7b-grammar"]


@pytest.mark.parametrize("name", PLAIN)
def test_plain_prompt_is_exactly_this_and_primes_the_call(name):
    wrapper = plugins.get_wrapper(name)
    assert wrapper.prompt(MESSAGES, FUNCTIONS) == GOLDEN_TURNS + '{"function":'
    assert wrapper.grammar is None


@pytest.mark.parametrize("name", GRAMMAR)
def test_grammar_prompt_is_the_same_without_priming_and_asks_for_the_grammar(name):
    wrapper = plugins.get_wrapper(name)
    assert wrapper.prompt(MESSAGES, FUNCTIONS) == GOLDEN_TURNS
    assert wrapper.grammar == "function-call"


def test_without_a_system_message_the_instructions_still_open_the_prompt():
    prompt = plugins.get_wrapper("chatml-grammar").prompt(MESSAGES[2:3], FUNCTIONS)
    assert prompt.startswith("<|im_start|>system\nReply to every turn")


@pytest.mark.parametrize("name", PLAIN + GRAMMAR)
def test_stop_sequences_end_the_turn(name):
    stops = plugins.get_wrapper(name).stop_sequences
    assert "<|im_end|>" in stops and "<|im_start|>" in stops


def test_the_plain_answer_is_read_after_the_primed_opening():
    wrapper = plugins.get_wrapper("chatml")
    call = wrapper.parse(
        ' "send_message",\n  "params": {\n    "inner_thoughts": "Answer.",\n    "message": "Sure."\n  }\n}',
        FUNCTIONS,
    )
    assert (call.inner_thoughts, call.arguments) == ("Answer.", {"message": "Sure."})


def test_smollm2_answers_with_an_offered_call_through_the_grammar(llama_server):
    """The embedded model speaks ChatML: with this prompt and the function-call grammar it writes a readable call.
    (The Dolphin variants send the same prompt, as the golden tests show, so one live run covers them.)"""
    from memgpt_core.models import CompletionRequest, Grammar

    wrapper = plugins.get_wrapper("chatml-grammar")
    backend = plugins.get_backend("llamacpp")(llama_server.url)
    conversation = [
        *MESSAGES[:5],
        {"role": "user", "content": '{"type": "user_message", "message": "What is my name?", "time": "2024-01-01"}'},
    ]
    prompt = wrapper.prompt(conversation, FUNCTIONS)
    grammar = plugins.get_grammar(wrapper.grammar).build(FUNCTIONS, format="gbnf")
    completion = backend.complete(
        CompletionRequest(
            prompt=prompt,
            max_tokens=120,
            stop=list(wrapper.stop_sequences),
            grammar=Grammar(format="gbnf", text=grammar),
            sampling={"temperature": 0},
        )
    )
    call = wrapper.parse(completion.text, FUNCTIONS)
    assert call.name in {fn["name"] for fn in FUNCTIONS}


class TestChatMLConformance(WrapperConformance):
    wrapper_name = "chatml"


class TestChatMLGrammarConformance(WrapperConformance):
    wrapper_name = "chatml-grammar"


class TestDolphinConformance(WrapperConformance):
    wrapper_name = "dolphin-2.1-mistral-7b"


class TestDolphinGrammarConformance(WrapperConformance):
    wrapper_name = "dolphin-2.1-mistral-7b-grammar"
