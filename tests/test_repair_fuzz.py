"""Property tests: whatever the model writes, repair returns a call or raises ParseError, in bounded time."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt_core.errors import ParseError
from memgpt_core.models import FunctionCall
from memgpt_core.repair import parse_function_call

DATA = Path(__file__).parent / "data"
FUNCTIONS = json.loads((DATA / "repair_functions.json").read_text())
CORPUS = [json.loads(line)["raw"] for line in (DATA / "repair_corpus.jsonl").read_text().splitlines() if line]

# The pieces model output is made of, so generated text hits the scanner's and json_repair's corners often.
PIECES = [
    *"{}[]\",:'\\ /#*`\n\t",
    '"function"', '"params"', '"send_message"', '"inner_thoughts"', '"message"', "function", "params",
    "send\\_message", "<|im_end|>", "</s>", "```json", "true", "True", "None", "null", "-1.5e3", "//", "/*", "*/",
    '"arguments": "{', "\\\"", "\\u00e9", "é", "👋",
]  # fmt: skip
json_ish = st.lists(st.sampled_from(PIECES), max_size=200).map("".join)


def check(raw: str, functions: list[dict] = FUNCTIONS) -> None:
    try:
        call = parse_function_call(raw, functions)
    except ParseError as exc:
        assert exc.raw == raw and exc.reason
        return
    assert isinstance(call, FunctionCall)
    assert call.name and isinstance(call.arguments, dict)
    if functions:
        assert call.name in {fn["name"] for fn in functions}, "only an offered function may be called"


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
