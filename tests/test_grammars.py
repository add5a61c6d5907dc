"""The built-in "function-call" grammar provider, without a server: shape, caching, errors, the JSON Schema form, and
what each GBNF grammar admits and refuses (memgpt_core.testing_gbnf; tests/test_grammars_server.py gives the same
cases to llama.cpp's own validator)."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_core import plugins
from memgpt_core.default_plugins.grammars import FunctionCallGrammar, call_problem, call_schema
from memgpt_core.gbnf import GrammarError, schema_to_gbnf
from memgpt_core.selection import MAX_STRING_CHARS
from memgpt_core.testing import GOLDEN_FUNCTIONS
from memgpt_core.testing_gbnf import GBNFMatcher, GBNFMatcherError, gbnf_accepts

sys.path.insert(0, str(Path(__file__).parent))
import grammar_cases  # tests/grammar_cases.py, shared with test_grammars_server.py

FIXTURES = json.loads((Path(__file__).parent / "grammar_functions.json").read_text())
MEMGPT = FIXTURES["memgpt"]
COMMUNITY = FIXTURES["community"]
ALL = MEMGPT + COMMUNITY


def rules(grammar: str) -> dict[str, str]:
    """The grammar's rules by name (the generator writes one rule per line)."""
    return dict(line.split(" ::= ", 1) for line in grammar.splitlines() if line)


def call(function: str, **params: Any) -> dict[str, Any]:
    return {"function": function, "params": {"inner_thoughts": "thinking", **params}}


@pytest.fixture
def provider() -> FunctionCallGrammar:
    FunctionCallGrammar._cache.clear()
    return FunctionCallGrammar()


def test_registered_under_the_name_wrappers_ask_for():
    grammar = plugins.get_grammar("function-call")
    assert isinstance(grammar, FunctionCallGrammar)
    assert grammar.formats == {"gbnf", "json_schema"}
    assert plugins.plugin_of("grammars", "function-call") == "memgpt_core.default_plugins.grammars"


def test_same_schemas_give_the_same_grammar(provider):
    first = {fmt: provider.build(ALL, format=fmt, max_string_length=300) for fmt in ("gbnf", "json_schema")}
    FunctionCallGrammar._cache.clear()
    again = {fmt: FunctionCallGrammar().build(copy.deepcopy(ALL), format=fmt, max_string_length=300) for fmt in first}
    assert again == first


def test_a_repeated_build_is_served_from_the_cache(provider):
    first = provider.build(MEMGPT, format="gbnf")
    # A separate but equal copy of the schemas hits the same entry: the key is the content, not the object.
    assert FunctionCallGrammar().build(copy.deepcopy(MEMGPT), format="gbnf") is first
    assert len(FunctionCallGrammar._cache) == 1


def test_every_option_is_part_of_the_cache_key(provider):
    texts = {
        provider.build(MEMGPT, format="gbnf"),
        provider.build(MEMGPT, format="json_schema"),
        provider.build(MEMGPT, format="gbnf", max_string_length=100),
        provider.build(MEMGPT, format="gbnf", inner_thoughts_in_params=False),
        provider.build(MEMGPT[:2], format="gbnf"),
        provider.build(list(reversed(MEMGPT)), format="gbnf"),
    }
    assert len(texts) == 6
    assert len(FunctionCallGrammar._cache) == 6


def test_only_the_offered_function_names_are_admitted(provider):
    grammar = rules(provider.build(MEMGPT, format="gbnf"))
    names = re.findall(r'^"\{\\"function\\": " "\\"(\w+)\\""', "\n".join(grammar.values()), re.MULTILINE)
    assert sorted(names) == sorted(f["name"] for f in MEMGPT)
    assert grammar["root"] == "call"
    assert grammar["call"] == " | ".join(rule_name(f["name"]) for f in MEMGPT)


def rule_name(function: str) -> str:
    return function.replace("_", "-")


def params_rule(grammar: dict[str, str], function: str) -> str:
    """The rule a function's params use (functions with identical parameters share one rule)."""
    return grammar[rule_name(function)].split('", \\"params\\": " ')[1].split()[0]


def test_inner_thoughts_come_first_and_heartbeat_is_a_boolean(provider):
    grammar = rules(provider.build(MEMGPT, format="gbnf"))
    for fn in MEMGPT:
        params = grammar[params_rule(grammar, fn["name"])]
        assert params.startswith('"{\\"inner_thoughts\\": " string ')
        if "request_heartbeat" in fn["parameters"]["properties"]:
            assert '", \\"request_heartbeat\\": " boolean' in params
    assert grammar["boolean"] == '"true" | "false"'


def test_without_inner_thoughts_in_params_the_key_is_absent(provider):
    assert "inner_thoughts" not in provider.build(MEMGPT, format="gbnf", inner_thoughts_in_params=False)
    schema = json.loads(provider.build(MEMGPT, format="json_schema", inner_thoughts_in_params=False))
    jsonschema.validate({"function": "send_message", "params": {"message": "hi"}}, schema)


def test_enum_values_are_the_only_choices(provider):
    grammar = rules(provider.build(MEMGPT, format="gbnf"))
    assert grammar["core-memory-append-params-name"] == '"\\"human\\"" | "\\"persona\\""'
    assert "core-memory-append-params-name" in grammar["core-memory-append-params"]


def test_optional_parameters_may_be_left_out_and_required_ones_may_not(provider):
    params = rules(provider.build(MEMGPT, format="gbnf"))["conversation-search-params"]
    assert '( ", \\"page\\": " integer )?' in params
    # query and request_heartbeat are required: no "?" around them.
    assert '", \\"query\\": " string ( ", \\"page\\": "' in params
    assert params.endswith('", \\"request_heartbeat\\": " boolean "}"')


def test_a_function_with_no_required_parameters_admits_the_empty_object():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}}
    grammar = rules(schema_to_gbnf(schema))
    # One alternative per key that can come first, and the empty object.
    assert grammar["call"] == '"{" ( "\\"a\\": " integer ( ", \\"b\\": " boolean )? | "\\"b\\": " boolean | "" ) "}"'


def test_string_length_cap_bounds_every_free_string(provider):
    gbnf = provider.build(ALL, format="gbnf", max_string_length=300)
    grammar = rules(gbnf)
    assert grammar["string-char-0-to-300"] == "string-char{0,300}"
    assert "string-char*" not in gbnf  # no string is left uncapped (object keys of free objects aside: none here)
    schema = json.loads(provider.build(ALL, format="json_schema", max_string_length=300))
    strings = [s for s in walk(schema) if s.get("type") == "string" or "string" in (s.get("type") or [])]
    assert strings and all(s.get("maxLength") == 300 or "enum" in s for s in strings)


def walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def string_caps(provider: FunctionCallGrammar, functions: list[dict[str, Any]], **options: Any) -> dict[str, int]:
    """Each function's cap on its strings, read from the JSON Schema form (inner_thoughts is always a free string)."""
    schema = json.loads(provider.build(functions, format="json_schema", **options))
    options_ = schema.get("anyOf", [schema])
    return {o["title"]: o["properties"]["params"]["properties"]["inner_thoughts"]["maxLength"] for o in options_}


def test_caps_shrink_with_the_token_budget(provider):
    small, large = (string_caps(provider, MEMGPT, max_tokens=n) for n in (256, 1024))
    assert all(small[name] < large[name] for name in small), (small, large)


def test_a_function_with_more_strings_gets_shorter_ones(provider):
    caps = string_caps(provider, MEMGPT, max_tokens=512)
    # thoughts + message, thoughts + content, thoughts + old and new content: two, two and three strings.
    assert caps["send_message"] > caps["core_memory_append"] > caps["core_memory_replace"]
    schema = json.loads(provider.build(MEMGPT, format="json_schema", max_tokens=512))
    replace = next(o for o in schema["anyOf"] if o["title"] == "core_memory_replace")["properties"]["params"]
    assert {replace["properties"][k]["maxLength"] for k in ("old_content", "new_content")} == {
        caps["core_memory_replace"]
    }


def test_the_budget_never_lifts_a_string_above_max_string_length(provider):
    caps = string_caps(provider, MEMGPT, max_tokens=100_000, max_string_length=300)
    assert set(caps.values()) == {300}


def test_a_tiny_budget_still_leaves_room_for_a_short_string(provider):
    from memgpt_core.default_plugins.grammars import MIN_STRING_CAP

    assert set(string_caps(provider, MEMGPT, max_tokens=20).values()) == {MIN_STRING_CAP}


def test_the_budget_is_part_of_the_cache_key(provider):
    first = provider.build(MEMGPT, format="gbnf", max_tokens=256)
    assert provider.build(MEMGPT, format="gbnf", max_tokens=512) != first
    assert provider.build(MEMGPT, format="gbnf", max_tokens=256) is first
    assert len(FunctionCallGrammar._cache) == 2


@pytest.mark.parametrize("option", ["max_tokens", "max_string_length"])
@pytest.mark.parametrize("value", [0, -5, 2.5, True, "512"])
def test_a_limit_that_is_not_a_whole_number_of_at_least_one_is_refused(provider, option, value):
    with pytest.raises(GrammarError, match=f"{option} must be a whole number of at least 1"):
        provider.build(MEMGPT, format="gbnf", **{option: value})


@pytest.mark.parametrize(
    ("schema", "rule"),
    [
        ({"type": "integer", "minimum": 1, "maximum": 360}, "[1-9] [0-9]{0,2}"),
        ({"type": "integer", "minimum": 0, "maximum": 9}, "[0-9]"),
        ({"type": "integer", "minimum": 0, "maximum": 1000}, '"0" | [1-9] [0-9]{0,3}'),
        ({"type": "integer", "minimum": 1}, "[1-9] [0-9]{0,15}"),
    ],
)
def test_an_integer_maximum_bounds_its_digits(schema, rule):
    grammar = rules(schema_to_gbnf(schema))
    assert grammar[grammar["root"]] == rule


def test_a_maximum_without_a_non_negative_minimum_bounds_nothing():
    # A minus sign lets a number be any length below zero, so the digits are not bounded.
    assert rules(schema_to_gbnf({"type": "integer", "maximum": 5}))["root"] == "integer"


def test_a_maximum_below_the_minimum_is_explained():
    with pytest.raises(GrammarError, match="maximum 0 is below minimum 1"):
        schema_to_gbnf({"type": "integer", "minimum": 1, "maximum": 0})


def test_the_agents_pages_and_minutes_keep_their_range_in_both_forms(provider):
    from memgpt_core.agent.functions import SCHEMAS

    schema = json.loads(provider.build(SCHEMAS, format="json_schema", max_tokens=512, max_string_length=600))
    params = {o["title"]: o["properties"]["params"]["properties"] for o in schema["anyOf"]}
    assert params["pause_heartbeats"]["minutes"] == {"type": "integer", "minimum": 1, "maximum": 360}
    assert params["conversation_search"]["page"] == {"type": "integer", "minimum": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(call("archival_memory_search", query="q", page=-1, request_heartbeat=False), schema)
    grammar = rules(provider.build(SCHEMAS, format="gbnf", max_tokens=512, max_string_length=600))
    assert '", \\"minutes\\": " positive-digits-3' in grammar["pause-heartbeats-params"]
    assert grammar["positive-digits-3"] == "[1-9] [0-9]{0,2}"  # 1 to 999: the function refuses 361 and above
    assert '", \\"page\\": " positive-digits' in grammar["conversation-search-params"]


def test_a_cap_above_llama_cpps_repetition_limit_is_built_from_chunks():
    grammar = rules(schema_to_gbnf({"type": "string", "maxLength": 2500}))
    # llama.cpp reads a bound above 2000 as "no bound", so 2500 is written as 2 chunks of 1000 and up to 500 more.
    assert grammar["string-char-chunk"] == "string-char{1000}"
    assert grammar["string-char-0-to-2500"] == (
        "string-char-chunks-0-to-1 string-char-0-to-999 | string-char-chunks-2 string-char-0-to-500"
    )
    assert all(int(n) <= 2000 for body in grammar.values() for n in re.findall(r"\{(?:\d+,)?(\d+)\}", body))


def test_a_declared_shorter_max_length_wins_over_the_cap():
    fn = {"name": "f", "parameters": {"type": "object", "properties": {"code": {"type": "string", "maxLength": 6}}}}
    schema = call_schema([fn], max_string_length=100)
    assert schema["properties"]["params"]["properties"]["code"] == {"type": "string", "maxLength": 6}


def test_strings_admit_every_json_escape_and_any_bracket_or_quote():
    char = rules(schema_to_gbnf({"type": "string"}))["string-char"]
    # Only the raw quote, the backslash and control characters are excluded; all eight JSON escapes and \uXXXX exist.
    assert char == '[^"\\\\\\x00-\\x1F] | "\\\\" ( ["\\\\/bfnrt] | "u" [0-9a-fA-F]{4} )'


def test_json_is_written_in_the_one_layout_json_dumps_writes():
    # No whitespace is left to the model: every space is part of a literal (", " and ": "), so all of it is forced.
    schema = {
        "type": "object",
        "properties": {"a": {"type": "null"}, "b": {"type": "array", "items": {"type": "integer"}}, "c": {}},
        "required": ["a", "b", "c"],
    }
    grammar = schema_to_gbnf(schema)
    assert "ws" not in rules(grammar)
    value = {"a": None, "b": [1, 2], "c": {"k": [True, {}], "l": "x y"}}
    assert gbnf_accepts(grammar, json.dumps(value))
    other_layouts = [
        json.dumps(value, indent=2),
        json.dumps(value, separators=(",", ":")),
        json.dumps(value).replace("[1", "[ 1"),
        json.dumps(value).replace('"k": ', '"k" : '),
        json.dumps(value) + " ",
    ]
    for text in other_layouts:
        assert not gbnf_accepts(grammar, text), text


def test_nullable_types_arrays_and_numbers_of_the_community_function(provider):
    schema = json.loads(provider.build(COMMUNITY, format="json_schema"))
    params = schema["properties"]["params"]
    assert params["properties"]["notes"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert params["required"] == ["inner_thoughts", "destinations", "budget", "request_heartbeat"]
    grammar = rules(provider.build(COMMUNITY, format="gbnf"))
    assert "number" in grammar["plan-trip-params"]
    assert grammar["plan-trip-params-destinations"].startswith('"[" string')  # minItems 1: no "?"


GOOD = [
    call("send_message", message='She said "hi" [then] {left} \\ / \n\t\u00e9 日本'),
    call("pause_heartbeats", minutes=15),
    call("core_memory_append", name="human", content="Likes tea.", request_heartbeat=True),
    call("core_memory_replace", name="persona", old_content="a", new_content="", request_heartbeat=False),
    call("conversation_search", query="tea", request_heartbeat=False),
    call("conversation_search", query="tea", page=2, request_heartbeat=True),
    call("conversation_search_date", start_date="2024-01-01", end_date="2024-02-01", request_heartbeat=True),
    call("conversation_search_date", start_date="2024-01-01", end_date="2024-02-01", page=0, request_heartbeat=True),
    call("archival_memory_insert", content="x", request_heartbeat=False),
    call("archival_memory_search", query="q", page=1, request_heartbeat=False),
    call("plan_trip", destinations=["Rome"], budget=1200.5, request_heartbeat=False),
    call(
        "plan_trip",
        destinations=["Rome", "Oslo"],
        budget=-1e3,
        currency="EUR",
        nights=3,
        travellers=[{"name": "Ann", "age": 40}, {"name": "Bo"}],
        daily_hours=[1.5, 2],
        notes=None,
        request_heartbeat=True,
    ),
]

BAD = {
    "unknown function": call("delete_everything", request_heartbeat=True),
    "missing required": call("core_memory_append", name="human", request_heartbeat=True),
    "no inner thoughts": {"function": "send_message", "params": {"message": "hi"}},
    "wrong type": call("pause_heartbeats", minutes="ten"),
    "boolean as a string": call("archival_memory_insert", content="x", request_heartbeat="true"),
    "enum broken": call("core_memory_append", name="robot", content="x", request_heartbeat=True),
    "extra parameter": call("send_message", message="hi", mood="happy"),
    "extra top-level key": {**call("send_message", message="hi"), "thoughts": "x"},
    "empty array under minItems": call("plan_trip", destinations=[], budget=1, request_heartbeat=True),
    "too many items": call("plan_trip", destinations=["a"], budget=1, daily_hours=[1, 2, 3, 4], request_heartbeat=True),
    "nights below minimum": call("plan_trip", destinations=["a"], budget=1, nights=0, request_heartbeat=True),
    "params not an object": {"function": "send_message", "params": "hi"},
}

SERIALISED_TOO_LONG = call("send_message", message="x" * 301)


@pytest.mark.parametrize("sample", GOOD, ids=lambda c: c["function"])
def test_json_schema_form_accepts_valid_calls(provider, sample):
    schema = json.loads(provider.build(ALL, format="json_schema", max_string_length=300))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(sample, schema)
    assert call_problem(json.dumps(sample), ALL) is None


@pytest.mark.parametrize("name", sorted(BAD))
def test_json_schema_form_rejects_invalid_calls(provider, name):
    schema = json.loads(provider.build(ALL, format="json_schema", max_string_length=300))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(BAD[name], schema)


def test_json_schema_form_enforces_the_string_cap(provider):
    schema = json.loads(provider.build(ALL, format="json_schema", max_string_length=300))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(SERIALISED_TOO_LONG, schema)


@settings(max_examples=60, deadline=None)
@given(
    thoughts=st.text(),
    content=st.text(),
    name=st.sampled_from(["human", "persona"]),
    heartbeat=st.booleans(),
    page=st.none() | st.integers(min_value=-(10**15), max_value=10**15),
)
def test_json_schema_form_accepts_any_text_in_strings(thoughts, content, name, heartbeat, page):
    schema = json.loads(FunctionCallGrammar().build(MEMGPT, format="json_schema"))
    optional = {} if page is None else {"page": page}
    jsonschema.validate(
        {
            "function": "core_memory_append",
            "params": {"inner_thoughts": thoughts, "name": name, "content": content, "request_heartbeat": heartbeat},
        },
        schema,
    )
    jsonschema.validate(
        {
            "function": "archival_memory_search",
            "params": {"inner_thoughts": thoughts, "query": content, **optional, "request_heartbeat": heartbeat},
        },
        schema,
    )


def test_tool_format_schemas_are_read_too(provider):
    tools = [{"type": "function", "function": fn} for fn in MEMGPT]
    assert provider.build(tools, format="gbnf") == provider.build(MEMGPT, format="gbnf")


def test_local_refs_are_inlined():
    fn = {
        "name": "tag",
        "parameters": {
            "type": "object",
            "$defs": {"Colour": {"type": "string", "enum": ["red", "blue"]}},
            "properties": {"colour": {"$ref": "#/$defs/Colour"}},
            "required": ["colour"],
        },
    }
    params = call_schema([fn])["properties"]["params"]
    assert params["properties"]["colour"] == {"type": "string", "enum": ["red", "blue"]}
    assert '"\\"red\\"" | "\\"blue\\""' in FunctionCallGrammar().build([fn], format="gbnf")


@pytest.mark.parametrize(
    ("functions", "words"),
    [
        ([], "no function schemas"),
        ([{"parameters": {}}], "has no name"),
        ([MEMGPT[0], MEMGPT[0]], "'send_message' is offered twice"),
        (
            [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "tuple"}}}}],
            "function 'f', parameter 'x': \"tuple\" is not a JSON Schema type",
        ),
        (
            [{"name": "f", "parameters": {"type": "object", "properties": {}, "required": ["x"]}}],
            "function 'f': required lists 'x', which its properties do not declare",
        ),
        (
            [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"$ref": "#/$defs/Nope"}}}}],
            "cannot resolve $ref '#/$defs/Nope'",
        ),
        (
            [
                {
                    "name": "f",
                    "parameters": {
                        "type": "object",
                        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
                        "properties": {"x": {"$ref": "#/$defs/Node"}},
                    },
                }
            ],
            "refers to itself",
        ),
    ],
)
def test_schemas_the_generator_cannot_express_are_explained(provider, functions, words):
    with pytest.raises(GrammarError) as err:
        provider.build(functions, format="gbnf")
    assert words in str(err.value)


def test_an_unknown_format_is_explained(provider):
    with pytest.raises(GrammarError, match="cannot write the format 'regex'") as err:
        provider.build(MEMGPT, format="regex")
    assert "gbnf, json_schema" in str(err.value)


def test_heartbeat_is_a_boolean_even_if_declared_otherwise():
    fn = {"name": "f", "parameters": {"type": "object", "properties": {"request_heartbeat": {"type": "string"}}}}
    assert call_schema([fn])["properties"]["params"]["properties"]["request_heartbeat"] == {"type": "boolean"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"function": "send_message", "params": {"inner_thoughts": "t", "message": "m"}}', None),
        ('{"function": "send_message", "params": {"inner_thoughts": "t", "message": "m"}', "not JSON"),
        ('{"function": "shout", "params": {}}', "unknown function 'shout'"),
        ('{"function": "pause_heartbeats", "params": {"inner_thoughts": "t", "minutes": true}}', "'minutes' is true"),
        ('{"function": "pause_heartbeats", "params": {"inner_thoughts": "t"}}', "missing 'minutes'"),
        (
            '{"function": "core_memory_append", "params": {"inner_thoughts": "t", "name": "x", "content": "c", '
            '"request_heartbeat": true}}',
            "'name' is \"x\"",
        ),
    ],
)
def test_call_problem_names_what_is_wrong(text, problem):
    found = call_problem(text, MEMGPT)
    assert found == problem if problem is None else problem in found


def test_the_cache_stays_bounded(provider):
    from memgpt_core.default_plugins import grammars

    first = provider.build(MEMGPT[:1], format="gbnf")
    for n in range(grammars._CACHE_SIZE):
        provider.build(MEMGPT[:1], format="gbnf", max_string_length=n + 1)
    assert len(FunctionCallGrammar._cache) == grammars._CACHE_SIZE
    # The oldest entry went first: building it again gives an equal grammar, but a new object.
    again = provider.build(MEMGPT[:1], format="gbnf")
    assert again == first and again is not first


def test_a_visible_start_pattern_is_enforced_in_gbnf_and_left_out_of_the_json_schema(provider):
    fn = {
        "name": "say",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "pattern": "^\\S", "maxLength": 40}},
            "required": ["text"],
        },
    }
    gbnf = provider.build([fn], format="gbnf")
    assert 'visible-string-max-40 ::= "\\"" visible-char string-char-0-to-39 "\\""' in gbnf
    schema = json.loads(provider.build([fn], format="json_schema"))
    text = schema["properties"]["params"]["properties"]["text"]
    assert text == {"type": "string", "maxLength": 40}  # llama.cpp's own converter refuses an unanchored pattern
    fn["parameters"]["properties"]["text"]["maxLength"] = 0
    with pytest.raises(GrammarError, match="no room for the visible first character"):
        provider.build([fn], format="gbnf")


# --- Every part that can grow is bounded by the token budget -----------------------------------------------------

BENCH = json.loads((Path(__file__).parent.parent / "benchmarks" / "community_functions.json").read_text())
SETS = {"memgpt": MEMGPT, "community": COMMUNITY, "community-bench": BENCH}
FORMS = ("gbnf", "json_schema")
# llama.cpp's JSON Schema converter: a number is a sign, 16 digits, ".", 16 digits, "e", a sign and 16 digits.
LLAMA_CPP_LONGEST_NUMBER = "-" + "9" * 16 + "." + "9" * 16 + "e-" + "9" * 16

Longest = tuple[str, int, int, int]  # (compact JSON text, fixed characters, free characters, whitespace places)


def longest(schema: dict[str, Any], fmt: str) -> Longest:
    """The longest value ``schema`` admits in ``fmt``, worked out from the bounds the provider wrote (a missing
    bound raises KeyError): its text and what it is made of. Free characters are those the model picks one by one
    (string contents, digits); whitespace places are counted as each form lays values out (llama.cpp's converter
    allows whitespace after every closing bracket too)."""
    extra = 1 if fmt == "json_schema" else 0
    if "const" in schema or "enum" in schema:
        text = max((json.dumps(v) for v in schema.get("enum", [schema.get("const")])), key=len)
        return text, len(text), 0, 0
    if "anyOf" in schema:
        return max((longest(o, fmt) for o in schema["anyOf"]), key=estimate)
    kind = schema["type"]
    if kind == "object":
        pairs = [(json.dumps(k), longest(v, fmt)) for k, v in schema["properties"].items()]
        text = "{" + ",".join(f"{k}:{v[0]}" for k, v in pairs) + "}"
        fixed = 1 + len(pairs) + sum(len(k) + 1 + v[1] for k, v in pairs)
        return text, fixed, sum(v[2] for _, v in pairs), 4 * len(pairs) + extra + sum(v[3] for _, v in pairs)
    if kind == "array":
        n = schema["maxItems"]
        item = longest(schema["items"], fmt)
        text = "[" + ",".join([item[0]] * n) + "]"
        return text, 2 + (n - 1) + n * item[1], n * item[2], 1 + extra + 2 * n + n * item[3]
    if kind == "string":
        n = schema["maxLength"]
        return '"' + "x" * n + '"', 2, n, 0
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if kind == "number" and fmt == "json_schema":
            text = LLAMA_CPP_LONGEST_NUMBER
        elif kind == "integer" and fmt == "json_schema" and low is not None and high is not None:
            text = max(str(low), str(high), key=len)  # llama.cpp keeps an integer's range exactly
        else:
            digits = len(str(int(max(abs(low), abs(high))))) if low is not None and high is not None else 16
            text = ("" if low is not None and low >= 0 else "-") + "9" * digits
            text += "." + "9" * 6 if kind == "number" else ""
        return text, 0, len(text), 0
    if kind == "boolean":
        return "false", 5, 0, 0
    assert kind == "null", schema
    return "null", 4, 0, 0


def estimate(value: Longest) -> int:
    """Tokens, counted as the provider promises to: fixed text at two characters a token, free characters at one,
    two tokens per whitespace place."""
    _text, fixed, free, spaces = value
    return -(-fixed // 2) + free + 2 * spaces


@pytest.mark.parametrize("fmt", FORMS)
@pytest.mark.parametrize("budget", [256, 512, 1024, 4096])
@pytest.mark.parametrize("name", sorted(SETS))
def test_the_longest_call_the_grammar_admits_fits_the_budget(fmt, budget, name):
    from memgpt_core.default_plugins.grammars import MIN_STRING_CAP

    for fn in SETS[name]:
        schema = call_schema([fn], max_tokens=budget, max_string_length=600, format=fmt)
        worst = longest(schema, fmt)
        if estimate(worst) > budget:
            # Only a budget too small for the call's structure is exceeded: then every part is at its floor.
            strings = [s for s in walk(schema) if isinstance(s, dict) and "maxLength" in s]
            assert all(s["maxLength"] == MIN_STRING_CAP for s in strings), (fn["name"], estimate(worst))
            assert all(a["maxItems"] == max(1, a.get("minItems", 0)) for a in arrays(schema)), fn["name"]
            assert budget <= 256
        # The longest value is one the JSON Schema form admits, so the bounds above are the ones that apply. (The
        # GBNF bounds digits, not ranges: its longest numbers can be out of range.)
        if fmt == "json_schema":
            jsonschema.validate(json.loads(worst[0]), schema)


@pytest.mark.parametrize("fmt", FORMS)
def test_the_budget_is_mostly_used(fmt):
    # Conservative, not wasteful: the longest admitted call of each function takes most of a 512-token budget.
    for fn in BENCH + MEMGPT:
        worst = estimate(longest(call_schema([fn], max_tokens=512, format=fmt), fmt))
        assert worst > 512 * 0.8, (fn["name"], worst)


def arrays(node: Any):
    return [s for s in walk(node) if isinstance(s, dict) and s.get("type") == "array"]


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_array_has_an_item_cap_in_both_forms(provider, name):
    for budget in (256, 512, 2048):
        schema = json.loads(provider.build(SETS[name], format="json_schema", max_tokens=budget))
        assert all(isinstance(a.get("maxItems"), int) and a["maxItems"] >= 1 for a in arrays(schema))
        gbnf = provider.build(SETS[name], format="gbnf", max_tokens=budget)
        # No repetition without an upper bound is left: no "*", no "+", no "{n,}".
        bodies = "\n".join(rules(gbnf).values())
        assert not re.search(r"[*+](?=\s|$|\))|\{\d+,\}", bodies.replace('"+"', "").replace('"-"', "")), gbnf


def params_of(schema: dict[str, Any], function: str) -> dict[str, Any]:
    option = next(o for o in schema.get("anyOf", [schema]) if o["title"] == function)
    return option["properties"]["params"]["properties"]


def test_an_array_without_max_items_gets_a_cap_that_grows_with_the_budget():
    from memgpt_core.default_plugins.grammars import MAX_ITEMS_UNDECLARED

    caps = [params_of(call_schema(BENCH, max_tokens=n), "tag_note")["tags"]["maxItems"] for n in (256, 512, 1024)]
    assert caps == sorted(caps) and caps[0] < caps[-1], caps
    huge = params_of(call_schema(BENCH, max_tokens=100_000), "tag_note")["tags"]
    assert huge["maxItems"] == MAX_ITEMS_UNDECLARED
    assert huge["items"]["maxLength"] > 16  # with room to spare, the tags get longer instead of more numerous


def test_a_declared_max_items_is_kept_when_it_fits_and_lowered_when_it_does_not():
    roomy = params_of(call_schema(BENCH + COMMUNITY, max_tokens=2048), "set_reminder")
    assert roomy["weekdays"]["maxItems"] == 7
    assert params_of(call_schema(COMMUNITY, max_tokens=4096), "plan_trip")["daily_hours"]["maxItems"] == 3
    tight = params_of(call_schema(COMMUNITY, max_tokens=256), "plan_trip")
    assert tight["daily_hours"]["maxItems"] < 3
    assert tight["destinations"]["maxItems"] >= tight["destinations"]["minItems"] == 1


def test_arrays_of_objects_bound_the_objects_strings_too():
    people = params_of(call_schema(BENCH, max_tokens=512), "add_contacts")["people"]
    assert people["maxItems"] >= 1
    item = people["items"]["properties"]
    assert item["name"]["maxLength"] >= 16
    assert item["phone"] == {"anyOf": [{"type": "string", "maxLength": item["name"]["maxLength"]}, {"type": "null"}]}


def test_the_json_schema_form_counts_llama_cpps_longer_numbers():
    gbnf, json_form = (call_schema(BENCH, max_tokens=512, format=f) for f in FORMS)
    # log_expense has two numbers: llama.cpp's converter admits 52 characters for each, the GBNF 24 and 8.
    assert (
        params_of(json_form, "log_expense")["inner_thoughts"]["maxLength"]
        < (params_of(gbnf, "log_expense")["inner_thoughts"]["maxLength"])
    )
    # Without numbers, the two forms differ only by the JSON form's whitespace after each closing bracket.
    for fn in MEMGPT:
        gbnf_cap, json_cap = (
            call_schema([fn], max_tokens=512, format=f)["properties"]["params"]["properties"]["inner_thoughts"]
            for f in FORMS
        )
        assert 0 <= gbnf_cap["maxLength"] - json_cap["maxLength"] <= 4, fn["name"]


@pytest.mark.parametrize(
    ("schema", "rule"),
    [
        ({"type": "number"}, '"-"? digits fraction?'),
        ({"type": "number", "minimum": 0, "maximum": 5}, "digits-1 fraction?"),
        ({"type": "number", "minimum": -90, "maximum": 90}, '"-"? digits-2 fraction?'),
        ({"type": "integer", "minimum": -90, "maximum": 90}, '"-"? digits-2'),
    ],
)
def test_numbers_are_bounded_by_their_digits(schema, rule):
    grammar = rules(schema_to_gbnf(schema))
    assert grammar[grammar["root"]] == rule
    assert "fraction ::=" not in schema_to_gbnf({"type": "integer"})


def test_a_number_has_no_exponent_and_at_most_six_decimals():
    grammar = rules(schema_to_gbnf({"type": "number"}))
    assert grammar["fraction"] == '"." [0-9]{1,6}'
    assert "[eE]" not in "\n".join(grammar.values())


def test_an_object_of_free_keys_gets_a_key_count_and_key_length():
    fn = {
        "name": "set_scores",
        "parameters": {
            "type": "object",
            "properties": {"scores": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}},
            "required": ["scores"],
        },
    }
    for fmt in FORMS:
        schema = call_schema([fn], max_tokens=512, format=fmt)
        scores = params_of(schema, "set_scores")["scores"]
        assert scores["maxProperties"] >= 1 and scores["propertyNames"]["maxLength"] >= 16
        jsonschema.validate(call("set_scores", scores={"a" * 16: 1}), schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(
                call("set_scores", scores={str(i): 1 for i in range(scores["maxProperties"] + 1)}), schema
            )
    grammar = rules(FunctionCallGrammar().build([fn], format="gbnf", max_tokens=512))
    more = grammar["set-scores-params-scores"].split()[-3]
    assert re.fullmatch(r"set-scores-params-scores-more-0-to-\d+", more), grammar["set-scores-params-scores"]


def test_without_a_budget_arrays_are_left_as_declared():
    plan = params_of(call_schema(COMMUNITY, max_string_length=300), "plan_trip")
    assert "maxItems" not in plan["destinations"] and plan["daily_hours"]["maxItems"] == 3


# --- What each GBNF grammar admits and refuses, judged without a server -------------------------------------------


@pytest.mark.parametrize("case", grammar_cases.all_cases(), ids=lambda case: case.name)
def test_each_grammar_admits_exactly_what_it_should(case):
    verdict = gbnf_accepts(case.grammar, case.text)
    if case.accepted:
        where = GBNFMatcher(case.grammar).longest_prefix(case.text)
        assert verdict, f"refused after {len(where)} of {len(case.text)} characters: ...{where[-60:]!r}"
    else:
        assert not verdict, case.text


def test_the_shared_cases_cover_every_function_and_both_verdicts():
    cases = grammar_cases.all_cases()
    assert {True, False} <= {c.accepted for c in cases}
    as_built = " ".join(c.name for c in cases if c.accepted and c.name.startswith("as built: "))
    assert all(f"as built: {f['name']}" in as_built for f in ALL), "a valid call of every fixture function"
    golden = {c.text.split('"')[3] for c in cases if c.accepted and c.name.startswith("golden: ")}
    assert golden == {f["name"] for f in GOLDEN_FUNCTIONS}


@pytest.mark.parametrize("name", sorted(grammar_cases.ACCEPTED))
def test_the_json_schema_form_admits_the_capped_calls_too(name):
    schema = json.loads(FunctionCallGrammar().build(ALL, format="json_schema", max_string_length=grammar_cases.CAP))
    jsonschema.validate(json.loads(grammar_cases.ACCEPTED[name]), schema)


@pytest.mark.parametrize("name", sorted(set(grammar_cases.REJECTED) - grammar_cases.JSON_SCHEMA_BLIND))
def test_the_json_schema_form_refuses_the_capped_calls_too(name):
    schema = json.loads(FunctionCallGrammar().build(ALL, format="json_schema", max_string_length=grammar_cases.CAP))
    try:
        call = json.loads(grammar_cases.REJECTED[name])
    except ValueError:
        return  # not JSON at all, so no schema could accept it either
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(call, schema)


GOLDEN_GRAMMAR = grammar_cases.as_the_agent_builds(GOLDEN_FUNCTIONS)
GOLDEN_CAPS = grammar_cases.string_caps(GOLDEN_FUNCTIONS)


@settings(max_examples=200, deadline=None)
@given(
    # Half the cap: written with ASCII escapes, a character beyond U+FFFF takes two (a surrogate pair), and the
    # grammar counts what is written.
    thoughts=st.text(max_size=GOLDEN_CAPS["conversation_search"] // 2),
    query=st.text(max_size=GOLDEN_CAPS["conversation_search"] // 2),
    page=st.none() | st.integers(min_value=-(10**15) + 1, max_value=10**16 - 1),
    ascii_only=st.booleans(),
)
def test_any_text_within_the_caps_written_as_json_is_admitted(thoughts, query, page, ascii_only):
    params: dict[str, Any] = {"inner_thoughts": thoughts, "query": query}
    if page is not None:
        params["page"] = page
    sample = json.dumps({"function": "conversation_search", "params": params}, ensure_ascii=ascii_only)
    assert gbnf_accepts(GOLDEN_GRAMMAR, sample), sample
    # The same call in any other layout is refused: the grammar writes JSON one way only.
    assert not gbnf_accepts(GOLDEN_GRAMMAR, json.dumps(json.loads(sample), ensure_ascii=ascii_only, indent=1))


@settings(max_examples=100, deadline=None)
@given(message=st.text(min_size=1, max_size=40), extra=st.integers(min_value=1, max_value=30))
def test_any_message_past_its_cap_is_refused(message, extra):
    cap = GOLDEN_CAPS["send_message"]
    at_cap = (message * (cap // len(message) + 1))[:cap]

    def sample(text: str) -> str:
        written = {"function": "send_message", "params": {"inner_thoughts": "", "message": text}}
        return json.dumps(written, ensure_ascii=False)  # one written character per character

    assert gbnf_accepts(GOLDEN_GRAMMAR, sample(at_cap))
    assert not gbnf_accepts(GOLDEN_GRAMMAR, sample(at_cap + "x" * extra))


def test_the_agents_caps_stay_under_max_string_chars():
    assert 0 < max(GOLDEN_CAPS.values()) <= MAX_STRING_CHARS
    assert 0 < max(grammar_cases.string_caps(ALL).values()) <= MAX_STRING_CHARS


@pytest.mark.parametrize(
    ("grammar", "words"),
    [
        ("root ::= undefined-rule", "undefined-rule"),
        ('root ::= "unclosed', "could not be read"),
        ('root ::= "\\uD800"', "not a character"),
    ],
)
def test_a_grammar_the_matcher_cannot_read_is_explained(grammar, words):
    with pytest.raises(GBNFMatcherError) as caught:
        GBNFMatcher(grammar)
    assert words in str(caught.value)
    assert caught.value.fix
