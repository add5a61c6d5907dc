"""Output repair: every corpus case reads as its expected call, is refused, or is reported cut off; plus the rules
that matter most, and check_call on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memgpt_core.errors import ParseError, TruncatedOutputError
from memgpt_core.repair import MAX_REPAIR_CHARS, check_call, parse_function_call

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
        "refuse-empty", "refuse-prose", "refuse-type",
    ):  # fmt: skip
        assert shape in shapes, f"the corpus has no {shape} case"


@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_corpus_case(case):
    functions = case.get("functions", FUNCTIONS)
    expect = case["expect"]
    if expect in ("refuse", "truncated"):
        with pytest.raises(ParseError) as caught:
            parse_function_call(case["raw"], functions)
        error = caught.value
        assert error.raw == case["raw"], "the error carries the model's text as it was"
        assert error.reason and error.reason in str(error)
        if expect == "refuse":
            assert not isinstance(error, TruncatedOutputError), f"not a cut: {error.reason}"
        else:
            assert isinstance(error, TruncatedOutputError), f"a cut, reported as: {error.reason}"
            partial = case["partial"]
            assert (error.name, error.arguments, error.inner_thoughts) == (
                partial["name"],
                partial["arguments"],
                partial["inner_thoughts"],
            )
        return
    call = parse_function_call(case["raw"], functions)
    assert (call.name, call.arguments) == (expect["name"], expect["arguments"])
    assert call.inner_thoughts == expect["inner_thoughts"]


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


def test_cut_off_call_with_complete_arguments_is_still_a_cut():
    raw = '{"function": "send_message", "params": {"message": "All set.", "inner_thoughts": "I should wr'
    with pytest.raises(TruncatedOutputError) as caught:
        parse_function_call(raw, FUNCTIONS)
    error = caught.value
    assert (error.name, error.arguments, error.inner_thoughts) == ("send_message", {"message": "All set."}, None)
    assert "send_message" in error.reason and "message" in error.reason
    assert error.raw == raw and error.fix


def test_cut_off_inside_a_required_argument_is_a_cut_and_says_which():
    with pytest.raises(TruncatedOutputError) as caught:
        parse_function_call(send("The answer to your question is 42")[:-10], FUNCTIONS)
    assert "cut off" in caught.value.reason and "message" in caught.value.reason
    assert (caught.value.name, caught.value.arguments, caught.value.inner_thoughts) == ("send_message", {}, "Reply.")


def test_cut_before_the_name_has_no_name():
    with pytest.raises(TruncatedOutputError) as caught:
        parse_function_call('{"inner_thoughts": "Greet them.", "function": "send_mes', FUNCTIONS)
    assert (caught.value.name, caught.value.arguments, caught.value.inner_thoughts) == (None, {}, "Greet them.")


@pytest.mark.parametrize(
    "tail",
    [
        ', "request_heartbeat": tr',  # a literal still being written
        ', "page": 1',  # a number that may go on
        ', "tags": ["a", "b"',  # a list left open
        ', "tags": ["a", "b"], ',  # a comma promising another member
        ', "pa',  # a key being written
        ', "page":',  # a colon with no value after it
    ],
)
def test_text_ending_inside_a_value_is_a_cut_even_with_every_required_argument(tail):
    raw = '{"function": "archival_memory_search", "params": {"inner_thoughts": "Look.", "query": "q"' + tail
    if "request_heartbeat" not in tail:
        raw = raw.replace('"query": "q"', '"query": "q", "request_heartbeat": true')
    with pytest.raises(TruncatedOutputError) as caught:
        parse_function_call(raw, FUNCTIONS)
    assert caught.value.name == "archival_memory_search"
    assert caught.value.arguments.get("query") == "q"


def test_text_that_stops_before_a_required_argument_is_a_cut_unless_the_call_was_closed():
    head = '{"function": "send_message", "params": {"inner_thoughts": "Thinking."'
    with pytest.raises(TruncatedOutputError) as caught:
        parse_function_call(head, FUNCTIONS)
    assert "cut off before its required argument message" in caught.value.reason
    for ended in (head + "}}", head + "}\n<|im_end|>", "```json\n" + head + "}\n```"):
        with pytest.raises(ParseError) as caught:
            parse_function_call(ended, FUNCTIONS)
        assert not isinstance(caught.value, TruncatedOutputError), ended
        assert "left out its required argument message" in caught.value.reason


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_missing_closing_braces_alone_are_not_a_cut(cut):
    raw = send("Fine.")
    call = parse_function_call(raw[: len(raw) - cut], FUNCTIONS)
    assert (call.name, call.arguments, call.inner_thoughts) == ("send_message", {"message": "Fine."}, "Reply.")


def test_a_string_closed_before_trailing_junk_is_kept_whole():
    raw = '{"function": "send_message", "params": {"inner_thoughts": "hi", "message": "Hello there!" and then the model'
    call = parse_function_call(raw + " rambles on", FUNCTIONS)
    assert (call.name, call.arguments, call.inner_thoughts) == ("send_message", {"message": "Hello there!"}, "hi")


def test_junk_after_a_string_with_a_quotation_inside_keeps_the_quotation():
    raw = send("x").replace('"x"}}', '"I loved "Heat", truly." Hope that "helps" you')
    assert parse_function_call(raw, FUNCTIONS).arguments == {"message": 'I loved "Heat", truly.'}


@pytest.mark.parametrize(
    "message",
    [
        'She said "hi", then le',
        'The book is called "Dune" and it is gr',
        'Use snake_case or \\"camelCase\\" wh',
        'The book is called "Dune"',  # the quote at the very end closes the quotation, not the message
        'The book is called "',  # ... or opens one
        'Say "cheese" \n',
    ],
)
def test_a_quote_inside_a_cut_off_string_is_text_not_an_end(message):
    raw = '{"function": "send_message", "params": {"inner_thoughts": "Reply.", "message": "' + message
    with pytest.raises(TruncatedOutputError) as caught:
        parse_function_call(raw, FUNCTIONS)
    assert caught.value.arguments == {}


# Where a cut leaves text that reads as a different whole call, and nothing in the text can tell: a single-quoted
# message cut right after an apostrophe that ends a word ('That' from 'That's my favourite.').
AMBIGUOUS_CUTS = {("single-quotes-4", "'That'"), ("text-after-12", "'That'")}


def test_a_cut_anywhere_gives_the_expected_call_or_an_error_never_another_call():
    for case in CORPUS:
        if not isinstance(case["expect"], dict):
            continue
        raw, expect = case["raw"], case["expect"]
        for cut in range(len(raw)):
            try:
                call = parse_function_call(raw[:cut], case.get("functions", FUNCTIONS))
            except ParseError:
                continue
            if (case["id"], raw[:cut][-6:]) in AMBIGUOUS_CUTS:
                continue
            assert (call.name, call.arguments) == (expect["name"], expect["arguments"]), (case["id"], raw[:cut])


def test_without_functions_an_open_call_with_no_arguments_yet_is_a_cut():
    with pytest.raises(TruncatedOutputError) as caught:
        parse_function_call('{"function": "my_tool", "params": {"inner_thoughts": "Use it."', [])
    assert (caught.value.name, caught.value.arguments, caught.value.inner_thoughts) == ("my_tool", {}, "Use it.")
    assert parse_function_call('{"function": "my_tool", "params": {"x": 1}', []).arguments == {"x": 1}


def test_an_unescaped_quote_inside_a_closed_string_is_still_text():
    raw = '{"function": "send_message", "params": {"inner_thoughts": "Reply.", "message": "Say "cheese" now."}}'
    assert parse_function_call(raw, FUNCTIONS).arguments == {"message": 'Say "cheese" now.'}


def test_response_is_only_the_openai_message():
    response = parse_function_call(send("Hi!", "Be nice."), FUNCTIONS).to_chat_completion_response()
    assert response == {
        "role": "assistant",
        "content": "Be nice.",
        "function_call": {"name": "send_message", "arguments": '{"message": "Hi!"}'},
    }


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


def test_an_argument_list_left_open_at_the_end_is_a_cut():
    raw = (
        '{"function": "archival_memory_search", "params": {"inner_thoughts": "Search.", "query": "q", '
        '"request_heartbeat": true, "tags": ["a", "b"'
    )
    with pytest.raises(TruncatedOutputError) as caught:
        parse_function_call(raw, FUNCTIONS)
    assert caught.value.arguments == {"query": "q", "request_heartbeat": True}


def test_the_parser_keeps_nothing_from_one_call_to_the_next():
    only_summary = [{"name": "save_summary", "parameters": {"type": "object", "properties": {}, "required": []}}]
    raw = send("hi")
    first = parse_function_call(raw, FUNCTIONS)
    with pytest.raises(ParseError):
        parse_function_call(raw, only_summary)
    assert parse_function_call(raw, []) == first
    assert parse_function_call(raw, FUNCTIONS) == first


# -- check_call ----------------------------------------------------------------------------------------------------

TYPED = {
    "type": "function",
    "function": {
        "name": "plan",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "count": {"type": "integer"},
                "ratio": {"type": "number"},
                "urgent": {"type": "boolean"},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "level": {"enum": [1, 2]},
                "steps": {"type": "array", "items": {"type": "string"}},
                "meta": {"type": "object", "properties": {"owner": {"type": "string"}}, "required": ["owner"]},
                "note": {"type": "string", "nullable": True},
                "due": {"type": ["string", "null"]},
                "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "code": {"type": ["integer", "string"]},
                "anything": {"description": "no type: any value"},
                "request_heartbeat": {"type": "boolean"},
            },
            "required": ["title", "count", "inner_thoughts", "request_heartbeat"],
        },
    },
}
OK = {"title": "T", "count": 1, "request_heartbeat": False}


def test_check_call_returns_a_coerced_copy():
    given = {**OK, "count": "3", "ratio": "0.5", "urgent": "true", "code": "7", "level": 2, "limit": 4.0}
    checked = check_call("plan", given, [TYPED], "raw")
    assert checked == {**OK, "count": 3, "ratio": 0.5, "urgent": True, "code": "7", "level": 2, "limit": 4.0}
    assert checked is not given and given["count"] == "3"
    assert check_call("plan", {**OK, "count": 2.0}, [TYPED], "raw")["count"] == 2


@pytest.mark.parametrize("key", ["note", "due", "limit", "anything"])
def test_check_call_accepts_null_only_where_the_schema_allows_it(key):
    assert check_call("plan", {**OK, key: None}, [TYPED], "raw")[key] is None


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"count": 1, "request_heartbeat": True}, "title"),
        ({"title": "T", "count": 1}, "request_heartbeat"),
        ({**OK, "count": "many"}, "count"),
        ({**OK, "count": True}, "count"),
        ({**OK, "count": 1.5}, "count"),
        ({**OK, "title": None}, "title"),
        ({**OK, "title": 5}, "title"),
        ({**OK, "ratio": None}, "ratio"),
        ({**OK, "ratio": float("nan")}, "ratio"),
        ({**OK, "urgent": "yes"}, "urgent"),
        ({**OK, "urgent": 1}, "urgent"),
        ({**OK, "kind": "c"}, "kind"),
        ({**OK, "level": True}, "level"),
        ({**OK, "steps": "one"}, "steps"),
        ({**OK, "steps": ["one", 2]}, "steps[1]"),
        ({**OK, "meta": []}, "meta"),
        ({**OK, "meta": {}}, "meta.owner"),
        ({**OK, "meta": {"owner": 3}}, "meta.owner"),
        ({**OK, "limit": "ten"}, "limit"),
        ({**OK, "code": None}, "code"),
    ],
)
def test_check_call_refuses_a_missing_or_mistyped_argument_and_names_it(arguments, named):
    with pytest.raises(ParseError) as caught:
        check_call("plan", arguments, [TYPED], "the raw text")
    assert not isinstance(caught.value, TruncatedOutputError)
    assert "plan" in caught.value.reason and named in caught.value.reason
    assert caught.value.raw == "the raw text" and caught.value.fix


def test_check_call_names_every_problem_at_once():
    with pytest.raises(ParseError) as caught:
        check_call("plan", {"count": "x", "urgent": "maybe"}, [TYPED], "raw")
    for named in ("title", "request_heartbeat", "count", "urgent"):
        assert named in caught.value.reason


def test_check_call_refuses_a_name_not_offered_and_takes_any_without_functions():
    with pytest.raises(ParseError) as caught:
        check_call("planner", OK, [TYPED], "raw")
    assert "planner" in caught.value.reason and "plan" in caught.value.reason
    assert check_call("planner", {"x": None}, [], "raw") == {"x": None}


def test_inner_thoughts_is_never_required_and_undeclared_arguments_are_kept():
    assert check_call("plan", {**OK, "extra": [1]}, [TYPED], "raw") == {**OK, "extra": [1]}


def test_parse_function_call_refuses_what_check_call_refuses():
    raw = '{"function": "pause_heartbeats", "params": {"inner_thoughts": "Rest.", "minutes": "a while"}}'
    with pytest.raises(ParseError) as caught:
        parse_function_call(raw, FUNCTIONS)
    assert "pause_heartbeats" in caught.value.reason and "minutes" in caught.value.reason
    raw = raw.replace('"a while"', '"20"')
    assert parse_function_call(raw, FUNCTIONS).arguments == {"minutes": 20}
