"""What the built-in function-call grammars must admit and refuse: cases shared by two judges.

tests/test_grammars.py checks every case without a server (memgpt_core.testing_gbnf); tests/test_grammars_server.py
checks the same cases with llama.cpp's own test-gbnf-validator and requires both to give the expected verdict. Each
case is a grammar, a text, and whether the grammar must admit it from its first character to its last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from memgpt_core import plugins
from memgpt_core.agent.functions import SCHEMAS
from memgpt_core.agent.testing import GrammarScriptedBackend
from memgpt_core.default_plugins.grammars import FunctionCallGrammar, call_schema
from memgpt_core.selection import MAX_STRING_CHARS, negotiate_grammar
from memgpt_core.testing import GOLDEN_FUNCTIONS

HERE = Path(__file__).parent
FIXTURES = json.loads((HERE / "grammar_functions.json").read_text())
MEMGPT: list[dict[str, Any]] = FIXTURES["memgpt"]
COMMUNITY: list[dict[str, Any]] = FIXTURES["community"]
ALL = MEMGPT + COMMUNITY
AGENT = SCHEMAS  # what the agent really sends
BENCH: list[dict[str, Any]] = json.loads((HERE.parent / "benchmarks" / "community_functions.json").read_text())
CAP = 300
AGENT_MAX_TOKENS = 512  # AgentSettings.max_tokens: the budget the agent builds its grammar for


@dataclass(frozen=True)
class Case:
    name: str
    grammar: str
    text: str
    accepted: bool


def text(function: str, *pairs: str) -> str:
    """A call written as a model would, with the params in the given (already JSON) ``"key": value`` pairs."""
    return '{"function": "%s", "params": {%s}}' % (function, ", ".join(pairs))  # noqa: UP031


def thoughts(value: str) -> str:
    return f'"inner_thoughts": {json.dumps(value)}'


IT = thoughts("Noting it.")
HB = '"request_heartbeat": true'


def built(functions: list[dict[str, Any]], **options: Any) -> str:
    return FunctionCallGrammar().build(functions, format="gbnf", **options)


def as_the_agent_builds(functions: list[dict[str, Any]], max_tokens: int = AGENT_MAX_TOKENS) -> str:
    """The GBNF an agent on a grammar backend gets for ``functions``: through selection.negotiate_grammar, with the
    chatml-grammar wrapper, the MAX_STRING_CHARS cap and the agent's output budget."""
    grammar, note = negotiate_grammar(
        plugins.get_wrapper("chatml-grammar"), GrammarScriptedBackend(), functions, max_tokens=max_tokens
    )
    assert grammar is not None and grammar.format == "gbnf", note
    return grammar.text


def string_caps(functions: list[dict[str, Any]], max_tokens: int = AGENT_MAX_TOKENS) -> dict[str, int]:
    """Each function's cap on its free strings in the agent's GBNF (every free string of one call shares it)."""
    schema = call_schema(functions, max_string_length=MAX_STRING_CHARS, max_tokens=max_tokens, format="gbnf")
    options = schema.get("anyOf", [schema])
    return {o["title"]: o["properties"]["params"]["properties"]["inner_thoughts"]["maxLength"] for o in options}


# -- the MemGPT and community functions (tests/grammar_functions.json), strings capped at CAP -----------------------

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
    "the layout json.dumps writes": json.dumps(
        {"function": "pause_heartbeats", "params": {"inner_thoughts": "Quiet now.", "minutes": 5}}
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
    # JSON is written in one layout (json.dumps's default): any other whitespace is refused.
    "compact, no spaces": '{"function":"send_message","params":{"inner_thoughts":"","message":"x"}}',
    "pretty-printed": json.dumps(
        {"function": "pause_heartbeats", "params": {"inner_thoughts": "Quiet now.", "minutes": 5}}, indent=2
    ),
    "a space inside the braces": text("send_message", IT, '"message": "hi"').replace("{", "{ "),
    "a space before a colon": text("send_message", IT, '"message": "hi"').replace('"message":', '"message" :'),
    "text after the call": text("send_message", IT, '"message": "hi"') + " Done!",
    "cut off": text("send_message", IT, '"message": "hi"')[:-2],
    "single quotes": "{'function': 'send_message', 'params': {'inner_thoughts': 'x', 'message': 'hi'}}",
}

JSON_SCHEMA_BLIND = frozenset(
    {
        "inner_thoughts not first",
        "unbounded padding",
        "compact, no spaces",
        "pretty-printed",
        "a space inside the braces",
        "a space before a colon",
        "number with an exponent",
        "number with seven decimals",
    }
)
"""Rejected cases a JSON Schema cannot see: key order, layout, and the way a number is written are GBNF-only."""


def capped_cases() -> list[Case]:
    grammar = built(ALL, max_string_length=CAP)
    return [Case(f"capped: {n}", grammar, t, True) for n, t in ACCEPTED.items()] + [
        Case(f"capped: {n}", grammar, t, False) for n, t in REJECTED.items()
    ]


# -- a valid call of every function of grammar_functions.json, checked in the grammar the agent would build ---------

ONE_CALL_EACH = {
    "send_message": ['"message": "Bonjour, ça va? 日本 \\u00e9 \\"quoted\\" \\\\ \\n"'],
    "pause_heartbeats": ['"minutes": 360'],
    "core_memory_append": ['"name": "persona"', '"content": "I like rain."', '"request_heartbeat": false'],
    "core_memory_replace": ['"name": "human"', '"old_content": "Tom"', '"new_content": "Sam"', HB],
    "conversation_search": ['"query": "holiday"', '"page": 1', '"request_heartbeat": false'],
    "conversation_search_date": ['"start_date": "2024-05-01"', '"end_date": "2024-05-31"', HB],
    "archival_memory_insert": ['"content": "The spare key is under the blue pot."', HB],
    "archival_memory_search": ['"query": "spare key"', HB],
    "plan_trip": ['"destinations": ["Kyoto"]', '"budget": 2500.5', '"nights": 7', HB],
}


def fixture_cases() -> list[Case]:
    """Each function of grammar_functions.json in the grammar the agent would build for all of them: a valid call is
    admitted, and its inner thoughts may be exactly as long as that function's cap, not one character longer."""
    grammar = as_the_agent_builds(ALL)
    caps = string_caps(ALL)
    cases = []
    for function, pairs in ONE_CALL_EACH.items():
        cap = caps[function]
        assert 16 <= cap <= MAX_STRING_CHARS, (function, cap)
        valid = text(function, IT, *pairs)
        for label, sample, ok in (
            ("", valid, True),
            (", thoughts at the cap", text(function, thoughts("t" * cap), *pairs), True),
            (", thoughts past the cap", text(function, thoughts("t" * (cap + 1)), *pairs), False),
            (", trailing text", valid + "\n}", False),
            (", cut off", valid[:-1], False),
        ):
            cases.append(Case(f"as built: {function}{label}", grammar, sample, ok))
    return cases


# -- core's golden functions (memgpt_core.testing), as the agent would build their grammar --------------------------


def golden_cases() -> list[Case]:
    grammar = as_the_agent_builds(GOLDEN_FUNCTIONS)
    caps = string_caps(GOLDEN_FUNCTIONS)
    send, search = caps["send_message"], caps["conversation_search"]
    message = '"message": "Hello Chad!"'
    accepted = {
        "send_message": text("send_message", thoughts("A new user. Greet him."), message),
        "unicode and every escape": text(
            "send_message", thoughts("Grüße 😀"), r'"message": "¿Qué tal? 你好 \"hi\" \\ \/ \b\f\n\r\t \u263A"'
        ),
        "search without the optional page": text("conversation_search", IT, '"query": "tea"'),
        "search with a page": text("conversation_search", IT, '"query": "tea"', '"page": 3'),
        "search with a negative page (an integer has no range here)": text(
            "conversation_search", IT, '"query": "tea"', '"page": -2'
        ),
        "empty thoughts and message": text("send_message", thoughts(""), '"message": ""'),
        "message at its cap": text("send_message", IT, '"message": "%s"' % ("m" * send)),
        "query at its cap": text("conversation_search", IT, '"query": "%s"' % ("q" * search)),
        "multibyte characters count as one each": text("send_message", IT, '"message": "%s"' % ("é" * send)),
        "escapes count as one character each": text("send_message", IT, '"message": "%s"' % ("\\n" * send)),
    }
    rejected = {
        "a function that is not offered": text("send_messages", IT, message),
        "a name in the wrong case": text("Send_Message", IT, message),
        "missing required message": text("send_message", IT),
        "missing required query": text("conversation_search", IT, '"page": 1'),
        "missing inner_thoughts": text("send_message", message),
        "params of the other function": text("send_message", IT, '"query": "tea"'),
        "text after the call": text("send_message", IT, message) + " I hope that helps!",
        "text before the call": "Sure! " + text("send_message", IT, message),
        # The grammar writes one layout; the same call laid out over lines (as the history writes earlier calls
        # back, memgpt_core.prompting.call_text) is another text.
        "the golden answer laid out over lines": json.dumps(
            {
                "function": "send_message",
                "params": {"inner_thoughts": "A new user. Greet him.", "message": "Hello Chad!"},
            },
            indent=2,
        ),
        "two calls": text("send_message", IT, message) * 2,
        "message past its cap": text("send_message", IT, '"message": "%s"' % ("m" * (send + 1))),
        "escapes past the cap": text("send_message", IT, '"message": "%s"' % ("\\u00e9" * (send + 1))),
        "query past its cap": text("conversation_search", IT, '"query": "%s"' % ("q" * (search + 1))),
        "unescaped quote": text("send_message", IT, '"message": "He said "hi""'),
        "raw line break": text("send_message", IT, '"message": "one\ntwo"'),
        "raw tab": text("send_message", IT, '"message": "one\ttwo"'),
        "unknown escape": text("send_message", IT, r'"message": "\q"'),
        "short unicode escape": text("send_message", IT, r'"message": "\u26"'),
        "page as a string": text("conversation_search", IT, '"query": "tea"', '"page": "3"'),
        "page as a fraction": text("conversation_search", IT, '"query": "tea"', '"page": 1.5'),
        "page as a boolean": text("conversation_search", IT, '"query": "tea"', '"page": true'),
        "page with seventeen digits": text("conversation_search", IT, '"query": "tea"', '"page": ' + "1" * 17),
        "message as a number": text("send_message", IT, '"message": 42'),
        "message as null": text("send_message", IT, '"message": null'),
        "thoughts as an array": text("send_message", '"inner_thoughts": ["a"]', message),
        "a trailing comma": text("send_message", IT, message + ","),
        "an extra top-level key": text("send_message", IT, message)[:-1] + ', "thoughts": "x"}',
    }
    return [Case(f"golden: {n}", grammar, t, True) for n, t in accepted.items()] + [
        Case(f"golden: {n}", grammar, t, False) for n, t in rejected.items()
    ]


# -- the agent's own functions: the bounds that grammar adds beyond the schemas --------------------------------------


def agent_cases() -> list[Case]:
    grammar = as_the_agent_builds(AGENT)
    cases = []

    def add(name: str, sample: str, ok: bool) -> None:
        cases.append(Case(f"agent: {name}", grammar, sample, ok))

    for page, ok in (("1", True), ("12", True), ("-1", False), ("0", False), ("01", False), ("1.5", False)):
        add(f"page {page}", text("archival_memory_search", IT, '"query": "q"', f'"page": {page}', HB), ok)
    # The grammar bounds the digits, not the range: 361 to 999 pass it, and pause_heartbeats refuses them.
    for minutes, ok in (("1", True), ("360", True), ("999", True), ("1000", False), ("0", False)):
        add(f"minutes {minutes}", text("pause_heartbeats", IT, f'"minutes": {minutes}'), ok)
    # A small model in a tight context answered "  " five times in a row; the grammar starts a message visibly.
    messages = (("Hi", True), ("Hi there ", True), ('\\"Quoted\\" hello', True), ("", False), ("  ", False))
    for message, ok in (*messages, (" Hi", False)):
        add(f"message {message!r}", text("send_message", IT, f'"message": "{message}"'), ok)
    caps = string_caps(AGENT)
    for function, pairs in (
        ("send_message", ['"message": "%s"']),
        ("conversation_search_date", ['"start_date": "%s"', '"end_date": "%s"', HB]),
    ):
        cap = caps[function]
        for length, ok in ((cap, True), (cap + 1, False)):
            filled = [p % ("d" * length) if "%s" in p else p for p in pairs]
            add(f"{function} strings of {length}", text(function, thoughts("t" * length), *filled), ok)
    assert caps["conversation_search_date"] < caps["send_message"]
    return cases


def without_inner_thoughts_cases() -> list[Case]:
    grammar = built(MEMGPT, inner_thoughts_in_params=False)
    return [
        Case("no thoughts: a call without them", grammar, text("send_message", '"message": "hi"'), True),
        Case("no thoughts: thoughts in params", grammar, text("send_message", IT, '"message": "hi"'), False),
    ]


def array_cases() -> list[Case]:
    grammar = as_the_agent_builds(BENCH)
    schema = call_schema(BENCH, max_string_length=MAX_STRING_CHARS, max_tokens=AGENT_MAX_TOKENS, format="gbnf")
    option = next(o for o in schema["anyOf"] if o["title"] == "tag_note")["properties"]["params"]["properties"]
    tags, tag = option["tags"]["maxItems"], option["tags"]["items"]["maxLength"]
    cases = []
    for count, length, ok in ((tags, tag, True), (tags + 1, 1, False), (1, tag + 1, False), (0, 0, True)):
        sample = text("tag_note", IT, '"title": "Trip"', '"tags": %s' % json.dumps(["t" * length] * count))  # noqa: UP031
        cases.append(Case(f"arrays: {count} tags of {length}", grammar, sample, ok))
    values = text("record_readings", IT, '"sensor": "s"', '"values": [-1234567890123456.125, 0.5]')
    cases.append(Case("arrays: sixteen digits and a fraction", grammar, values, True))
    return cases


def chunked_cases() -> list[Case]:
    """A cap above llama.cpp's repetition limit of 2000, built from chunks of 1000: exact at every length."""
    grammar = built(MEMGPT[:1], max_string_length=2500)
    lengths = ((0, True), (999, True), (1000, True), (1999, True), (2000, True), (2500, True), (2501, False))
    return [
        Case(f"chunked: {n} characters", grammar, text("send_message", thoughts(""), '"message": "%s"' % ("y" * n)), ok)
        for n, ok in lengths
    ]


# -- GBNF syntax: each construct our generator writes, in a grammar of its own ---------------------------------------

SYNTAX = [
    (
        'root ::= [^"\\\\\\x00-\\x1F]',
        [("a", True), ("é", True), ("日", True), ('"', False), ("\\", False), ("\n", False)],
    ),
    (
        'root ::= "\\\\" ( ["\\\\/bfnrt] | "u" [0-9a-fA-F]{4} )',
        [("\\n", True), ("\\u00eF", True), ("\\u00e", False), ("\\x", False)],
    ),
    ('root ::= "a"{2,4}', [("a", False), ("aa", True), ("aaaa", True), ("aaaaa", False)]),
    ('root ::= "a"{3}', [("aaa", True), ("aa", False), ("aaaa", False)]),
    ('root ::= "a"{2,}', [("a", False), ("aa", True), ("a" * 50, True)]),
    ('root ::= "a"* "b"+ "c"?', [("", False), ("b", True), ("aabbc", True), ("abcc", False), ("ac", False)]),
    ('root ::= | " " | "\\n" [ \\t]{0,2}', [("", True), (" ", True), ("\n\t ", True), ("\n   ", False), ("  ", False)]),
    (
        'root ::= "-"? ( "0" | [1-9] [0-9]{0,2} ) ( "." [0-9]{1,2} )?',
        [("-0", True), ("999.25", True), ("1000", False), ("01", False), ("1.", False)],
    ),
    ('root ::= "\\"q\\"" "\\u00e9" "\\x41"', [('"q"éA', True), ('"q"e\\x41', False)]),
    ('root ::= [\\u00e0-\\u00ff]+ "\\U0001F600"', [("éà😀", True), ("e😀", False), ("é", False)]),
    (
        'item ::= "x" | "[" list? "]"\nlist ::= item ("," item)*\nroot ::= item',
        [("[x,[x,[]]]", True), ("[x,]", False), ("[[x]", False)],
    ),
    ('root ::= a-b\na-b ::= "ab"  # a comment\n', [("ab", True), ("a", False)]),
]


def syntax_cases() -> list[Case]:
    return [
        Case(f"syntax {i}: {sample!r}", grammar, sample, ok)
        for i, (grammar, samples) in enumerate(SYNTAX)
        for sample, ok in samples
    ]


@lru_cache(maxsize=1)
def all_cases() -> tuple[Case, ...]:
    cases = [
        *syntax_cases(),
        *capped_cases(),
        *fixture_cases(),
        *golden_cases(),
        *agent_cases(),
        *without_inner_thoughts_cases(),
        *array_cases(),
        *chunked_cases(),
    ]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    return tuple(cases)
