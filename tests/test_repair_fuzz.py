"""Property tests: whatever the model writes, repair returns a call or raises ParseError, in bounded time, and a
returned call always satisfies its function's schema.

That last check is independent of the parser: ``jsonschema`` validates the arguments against the function's
``parameters``, so a bug in ``check_call`` cannot hide itself."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from memgpt_core.errors import ParseError, TruncatedOutputError
from memgpt_core.models import FunctionCall
from memgpt_core.repair import parse_function_call

DATA = Path(__file__).parent / "data"
FUNCTIONS = json.loads((DATA / "repair_functions.json").read_text())
CASES = [json.loads(line) for line in (DATA / "repair_corpus.jsonl").read_text().splitlines() if line]
CORPUS = [case["raw"] for case in CASES]

# The pieces model output is made of, so generated text hits the scanner's and json_repair's corners often.
PIECES = [
    *"{}[]\",:'\\ /#*`\n\t",
    '"function"', '"params"', '"send_message"', '"inner_thoughts"', '"message"', "function", "params",
    "send\\_message", "<|im_end|>", "</s>", "```json", "true", "True", "None", "null", "-1.5e3", "//", "/*", "*/",
    '"arguments": "{', "\\\"", "\\u00e9", "é", "👋",
    '"pause_heartbeats"', '"minutes"', '"core_memory_append"', '"name"', '"human"', '"request_heartbeat"',
    '"archival_memory_search"', '"query"', '"tags"', '"page"', "42", '"7"', "3.5", '"true"', "[]",
]  # fmt: skip
json_ish = st.lists(st.sampled_from(PIECES), max_size=200).map("".join)


def as_json_schema(schema):
    """OpenAPI's ``nullable: true`` written the JSON Schema way, so jsonschema judges null as the parser must."""
    if isinstance(schema, list):
        return [as_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: as_json_schema(value) for key, value in schema.items() if key != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if schema.get("nullable") is True else out


def schema_violations(name: str, arguments: dict, functions: list[dict]) -> list[str]:
    """What jsonschema finds wrong with these arguments for this function: missing required keys, wrong types."""
    by_name = {fn.get("function", fn)["name"]: fn.get("function", fn) for fn in functions}
    parameters = as_json_schema(by_name[name].get("parameters") or {})
    return [error.message for error in Draft202012Validator(parameters).iter_errors(arguments)]


def check(raw: str, functions: list[dict] = FUNCTIONS) -> None:
    offered = {fn["name"] for fn in functions}
    try:
        call = parse_function_call(raw, functions)
    except TruncatedOutputError as exc:
        assert exc.raw == raw and exc.reason
        assert isinstance(exc.arguments, dict)
        assert exc.name is None or not functions or exc.name in offered
        return
    except ParseError as exc:
        assert exc.raw == raw and exc.reason
        return
    assert isinstance(call, FunctionCall)
    assert call.name and isinstance(call.arguments, dict)
    assert set(call.to_chat_completion_response()) == {"role", "content", "function_call"}
    if functions:
        assert call.name in offered, "only an offered function may be called"
        assert schema_violations(call.name, call.arguments, functions) == [], (
            f"a returned call breaks its schema: {raw!r}"
        )


@settings(max_examples=300, deadline=timedelta(seconds=2))
@given(st.text(max_size=2000))
def test_any_text(raw):
    check(raw)


@settings(max_examples=400, deadline=timedelta(seconds=2))
@given(json_ish, st.booleans())
def test_json_like_text(raw, offer_functions):
    check(raw, FUNCTIONS if offer_functions else [])


@settings(max_examples=400, deadline=timedelta(seconds=2))
@given(st.sampled_from(CORPUS), st.data())
def test_corpus_outputs_cut_and_spliced(raw, data):
    cut = data.draw(st.integers(0, len(raw)))
    at = data.draw(st.integers(0, cut))
    snippet = data.draw(json_ish)
    check(raw[:at] + snippet + raw[at:cut])


@settings(
    max_examples=8,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=40).map("".join), st.sampled_from([65_536, 300_000, 1 << 20])
)
def test_big_outputs_up_to_one_megabyte(chunk, size):
    raw = (chunk * (size // len(chunk) + 1))[:size]
    check(raw)
    check('{"function": "send_message", "params": {"message": "' + raw)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_no_corpus_output_gives_a_call_its_schema_rejects(case):
    check(case["raw"], case.get("functions", FUNCTIONS))


# Calls to the offered functions with arguments of any JSON type (right or wrong), written as JSON or Python, whole or
# cut anywhere: whatever comes back must satisfy the schema.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["human", "persona", "true", "False", "12", "-3", "1.5", "null", "None", "[]"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


@st.composite
def typed_calls(draw):
    fn = draw(st.sampled_from(FUNCTIONS))
    keys = [*fn["parameters"]["properties"], "inner_thoughts", "extra"]
    params = draw(st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys)))
    text = json.dumps({"function": fn["name"], "params": params})
    if draw(st.booleans()):
        text = repr({"function": fn["name"], "params": params})  # Python literals and single quotes
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


@settings(max_examples=500, deadline=timedelta(seconds=2))
@given(typed_calls())
def test_calls_with_arguments_of_any_type(raw):
    check(raw)
