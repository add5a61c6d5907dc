"""Output repair: every corpus case reads as its expected call or is refused, plus the rules that matter most."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memgpt_core.errors import ParseError
from memgpt_core.repair import MAX_REPAIR_CHARS, parse_function_call

DATA = Path(__file__).parent / "data"
FUNCTIONS = json.loads((DATA / "repair_functions.json").read_text())
CORPUS = [json.loads(line) for line in (DATA / "repair_corpus.jsonl").read_text().splitlines() if line.strip()]


def test_corpus_covers_every_failure_shape():
    shapes = {case["shape"] for case in CORPUS}
    assert len(CORPUS) >= 80
    for shape in (
        "missing-brace", "text-after", "text-before", "fence", "raw-newline", "unescaped-quote", "single-quotes",
        "python-literals", "trailing-comma", "comments", "unquoted-keys", "escaped-underscore", "params-alias",
        "params-string", "thoughts-outside", "cut-off", "refuse-ambiguous", "refuse-unknown", "refuse-cut",
        "refuse-empty", "refuse-prose",
    ):  # fmt: skip
        assert shape in shapes, f"the corpus has no {shape} case"


@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_corpus_case(case):
    functions = case.get("functions", FUNCTIONS)
    expect = case["expect"]
    if expect == "refuse":
        with pytest.raises(ParseError) as caught:
            parse_function_call(case["raw"], functions)
        assert caught.value.raw == case["raw"], "the error carries the model's text as it was"
        assert caught.value.reason and caught.value.reason in str(caught.value)
        return
    call = parse_function_call(case["raw"], functions)
    assert (call.name, call.arguments) == (expect["name"], expect["arguments"])
    assert call.inner_thoughts == expect["inner_thoughts"]
    assert call.truncated == expect["truncated"]


def send(message: str, thoughts: str = "Reply.") -> str:
    return json.dumps({"function": "send_message", "params": {"inner_thoughts": thoughts, "message": message}})


def test_unknown_name_error_names_the_offered_functions():
    with pytest.raises(ParseError) as caught:
        parse_function_call('{"function": "send_email", "params": {}}', FUNCTIONS)
    assert "send_email" in caught.value.reason
    for fn in FUNCTIONS:
        assert fn["name"] in caught.value.reason


def test_never_guesses_between_two_functions():
    with pytest.raises(ParseError) as caught:
        parse_function_call('{"function": "core_memory", "params": {"name": "human", "content": "x"}}', FUNCTIONS)
    assert "core_memory_append" in caught.value.reason and "core_memory_replace" in caught.value.reason
    assert "guess" in caught.value.reason


def test_a_name_is_matched_only_against_the_functions_of_this_prompt():
    only_summary = [{"name": "save_summary", "parameters": {"type": "object", "properties": {}, "required": []}}]
    with pytest.raises(ParseError):
        parse_function_call(send("hi"), only_summary)


def test_without_functions_any_name_is_accepted():
    call = parse_function_call('{"function": "whatever_tool", "params": {"a": 1}}', [])
    assert (call.name, call.arguments) == ("whatever_tool", {"a": 1})


def test_cut_off_call_with_complete_arguments_is_marked_truncated():
    raw = '{"function": "send_message", "params": {"message": "All set.", "inner_thoughts": "I should wr'
    call = parse_function_call(raw, FUNCTIONS)
    assert call.truncated
    assert call.arguments == {"message": "All set."}


def test_cut_off_inside_a_required_argument_is_refused_and_says_so():
    with pytest.raises(ParseError) as caught:
        parse_function_call(send("The answer to your question is 42")[:-10], FUNCTIONS)
    assert "cut off" in caught.value.reason and "message" in caught.value.reason


def test_missing_closing_braces_alone_are_not_a_cut():
    call = parse_function_call(send("Fine.")[:-2], FUNCTIONS)
    assert (call.arguments, call.truncated) == ({"message": "Fine."}, False)


def test_inner_thoughts_become_content_and_leave_the_arguments():
    response = parse_function_call(send("Hi!", "Be nice."), FUNCTIONS).to_chat_completion_response()
    assert response["content"] == "Be nice."
    assert json.loads(response["function_call"]["arguments"]) == {"message": "Hi!"}


def test_thoughts_written_before_the_json_when_not_in_params():
    raw = 'The user greeted me.\n{"function": "send_message", "params": {"message": "Hello!"}}'
    call = parse_function_call(raw, FUNCTIONS, inner_thoughts_in_params=False)
    assert call.inner_thoughts == "The user greeted me."
    assert call.arguments == {"message": "Hello!"}


def test_an_escaped_backslash_before_an_underscore_is_kept():
    call = parse_function_call(send("C:\\\\new_folder"), FUNCTIONS)
    assert call.arguments["message"] == "C:\\\\new_folder"


def test_valid_call_of_any_size_is_read_by_strict_json():
    big = "x" * (MAX_REPAIR_CHARS * 4)
    assert parse_function_call(send(big), FUNCTIONS).arguments["message"] == big


def test_broken_call_beyond_the_repair_cap_is_refused_with_the_reason():
    big = "word " * (MAX_REPAIR_CHARS // 2)
    raw = '{function: "send_message", params: {message: "' + big + '"}}'  # unquoted keys: only json_repair reads it
    with pytest.raises(ParseError) as caught:
        parse_function_call(raw, FUNCTIONS)
    assert "KB" in caught.value.reason


def test_deep_nesting_is_refused_not_recursed():
    with pytest.raises(ParseError) as caught:
        parse_function_call('{"function": "send_message", "params": ' + "[" * 5000, FUNCTIONS)
    assert "nests deeper" in caught.value.reason


def test_parse_error_message_is_a_sentence_with_a_fix():
    with pytest.raises(ParseError) as caught:
        parse_function_call("Hello! How can I help?", FUNCTIONS)
    text = str(caught.value)
    assert text.startswith("could not read the model's output as a function call: ")
    assert "fix:" in text


def test_an_argument_list_left_open_at_the_end_is_dropped_as_cut_off():
    raw = (
        '{"function": "archival_memory_search", "params": {"inner_thoughts": "Search.", "query": "q", '
        '"request_heartbeat": true, "tags": ["a", "b"'
    )
    call = parse_function_call(raw, FUNCTIONS)
    assert call.truncated
    assert call.arguments == {"query": "q", "request_heartbeat": True}
