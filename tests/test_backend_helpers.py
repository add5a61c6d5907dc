"""The helpers core gives backends: the grammar-format check, counting the prompt before sending it to a server that
would cut it silently, and reading an OpenAI-style answer. Each backend's own tests check that it uses them."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import BackendResponseError, ConfigError, ContextOverflowError
from memgpt_core.models import CompletionRequest, Grammar, Timings
from memgpt_core.openai_style import read_completion, read_timings
from memgpt_core.testing import assert_light_import

URL = "http://127.0.0.1:7070"


class CountingBackend(Backend):
    """Counts every prompt as ``tokens`` tokens and remembers what it was asked to count."""

    name: ClassVar[str] = "counting"
    default_endpoint: ClassVar[str] = URL
    capabilities: ClassVar[Capabilities] = Capabilities(grammar_formats=frozenset({"gbnf"}), exact_tokenizer=True)

    def __init__(self, tokens: int | None = 100) -> None:
        super().__init__()
        self.tokens = tokens
        self.counted: list[str] = []

    def complete(self, request: CompletionRequest) -> Any:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int | None:
        self.counted.append(text)
        return self.tokens


class SchemaBackend(CountingBackend):
    name: ClassVar[str] = "schema-only"
    capabilities: ClassVar[Capabilities] = Capabilities(grammar_formats=frozenset({"json_schema"}))


class PlainBackend(CountingBackend):
    name: ClassVar[str] = "plain"
    capabilities: ClassVar[Capabilities] = Capabilities()


def _request(**fields: Any) -> CompletionRequest:
    return CompletionRequest(**{"prompt": "Hello", "max_tokens": 20, **fields})


# -- Backend.accepted_grammar ----------------------------------------------------------------------------------------


def test_accepted_grammar_passes_a_declared_format_and_no_grammar() -> None:
    gbnf = Grammar(format="gbnf", text='root ::= "yes"')
    assert CountingBackend().accepted_grammar(_request(grammar=gbnf)) is gbnf
    assert CountingBackend().accepted_grammar(_request()) is None
    assert PlainBackend().accepted_grammar(_request()) is None


@pytest.mark.parametrize(
    ("backend_class", "given", "takes", "builds"),
    [
        (CountingBackend, "json_schema", "takes GBNF grammars only", "builds GBNF"),
        (SchemaBackend, "gbnf", "takes JSON-schema grammars only", "builds a JSON schema"),
        (PlainBackend, "gbnf", "takes no grammars", "without -grammar"),
    ],
)
def test_accepted_grammar_refuses_an_undeclared_format(
    backend_class: type[Backend], given: str, takes: str, builds: str
) -> None:
    backend = backend_class()
    with pytest.raises(ConfigError) as caught:
        backend.accepted_grammar(_request(grammar=Grammar(format=given, text="x")))  # type: ignore[arg-type]
    said = str(caught.value)
    assert backend.name in said and URL in said and takes in said and f"a {given} grammar" in said
    assert caught.value.fix is not None and builds in caught.value.fix


# -- Backend.check_prompt_fits ---------------------------------------------------------------------------------------


def test_check_prompt_fits_without_a_window_counts_nothing() -> None:
    backend = CountingBackend()
    assert backend.check_prompt_fits(_request(), server="Srv", larger_context="grow it") is None
    assert backend.counted == []


def test_check_prompt_fits_returns_the_count_when_it_fits() -> None:
    backend = CountingBackend(tokens=100)
    # 100 + 20 == 120: exactly full still fits.
    assert backend.check_prompt_fits(_request(context_window=120), server="Srv", larger_context="grow it") == 100
    assert backend.counted == ["Hello"]


def test_check_prompt_fits_refuses_what_the_server_would_cut() -> None:
    backend = CountingBackend(tokens=101)
    with pytest.raises(ContextOverflowError) as caught:
        backend.check_prompt_fits(_request(context_window=120), server="Srv", larger_context="grow it")
    error = caught.value
    assert error.prompt_tokens == 101 and error.context_window == 120 and error.url == URL
    said = str(error)
    assert "101 tokens" in said and "20 more" in said and "120 tokens" in said and URL in said
    assert "Srv would silently drop the start of the prompt" in said
    assert error.fix is not None and error.fix.endswith("if this repeats, grow it")


def test_check_prompt_fits_window_argument_wins_and_no_count_skips() -> None:
    backend = CountingBackend(tokens=100)
    with pytest.raises(ContextOverflowError) as caught:
        backend.check_prompt_fits(_request(), window=64, server="Srv", larger_context="grow it")
    assert caught.value.context_window == 64
    uncounted = CountingBackend(tokens=None)
    assert uncounted.check_prompt_fits(_request(context_window=8), server="Srv", larger_context="grow it") is None


# -- memgpt_core.openai_style ----------------------------------------------------------------------------------------


def test_openai_style_imports_nothing_heavy() -> None:
    assert_light_import("memgpt_core.openai_style")


def test_read_completion_reads_a_completions_answer() -> None:
    answer = {
        "model": "mistral-7b",
        "choices": [{"index": 0, "text": " yes", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        "timings": {"prompt_n": 12, "prompt_ms": 30.5, "predicted_n": 5, "predicted_ms": 80, "cache_n": 4},
    }
    done = read_completion(answer, URL + "/v1/completions", server="Srv", prompt_tokens=99)
    assert done.text == " yes" and done.finish_reason == "length" and done.model == "mistral-7b"
    assert done.prompt_tokens == 12 and done.completion_tokens == 5, "the server's usage wins over the own count"
    assert done.timings == Timings(prompt_n=12, prompt_ms=30.5, predicted_n=5, predicted_ms=80.0, cache_n=4)


def test_read_completion_reads_a_chat_answer_and_falls_back_to_the_own_count() -> None:
    answer = {"choices": [{"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}]}
    done = read_completion(answer, URL, server="Srv", prompt_tokens=7)
    assert done.text == "{}" and done.finish_reason == "stop"
    assert done.prompt_tokens == 7 and done.completion_tokens is None and done.model is None and done.timings is None


def test_read_completion_leaves_empty_text_to_the_backend() -> None:
    weird = {"choices": [{"text": None, "finish_reason": None}], "usage": {"prompt_tokens": "many"}}
    done = read_completion(weird, URL, server="Srv")
    assert done.text == "" and done.finish_reason == "stop" and done.prompt_tokens is None


@pytest.mark.parametrize("answer", [{}, {"choices": []}, {"choices": [{"index": 0}]}, ["not", "an", "object"]])
def test_read_completion_without_a_choice_names_the_url_and_the_fix(answer: Any) -> None:
    url = URL + "/v1/completions"
    with pytest.raises(BackendResponseError) as caught:
        read_completion(answer, url, server="Srv")
    assert caught.value.url == url and str(caught.value).startswith(f"Srv at {url} answered without a completion")
    assert caught.value.fix is not None and "BACKEND_TYPE" in caught.value.fix
    with pytest.raises(BackendResponseError) as given:
        read_completion(answer, url, server="Srv", fix="point it at Srv")
    assert given.value.fix == "point it at Srv"


def test_read_timings_keeps_what_has_the_right_type() -> None:
    assert read_timings({"choices": []}) is None
    assert read_timings({"timings": {}}) is None
    assert read_timings("text") is None
    odd = read_timings({"timings": {"prompt_n": "3", "prompt_ms": 1, "predicted_n": True, "cache_n": 2.0}})
    assert odd == Timings(prompt_ms=1.0, cache_n=2)
