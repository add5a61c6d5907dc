"""Choosing the prompt wrapper: --model by name, else the seed page's default for the backend."""

from __future__ import annotations

import pytest

from memgpt_core import plugins
from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import NotInstalledError
from memgpt_core.selection import choose_wrapper


class NoGrammarBackend(Backend):
    """A backend that declares no grammar format, like a server without constrained sampling."""

    name = "no-grammar"
    default_endpoint = "http://127.0.0.1:1"
    capabilities = Capabilities()

    def complete(self, request):  # pragma: no cover - never called: choosing a wrapper sends nothing
        raise AssertionError("choose_wrapper must not talk to the backend")


@pytest.fixture(autouse=True)
def fresh_plugins():
    plugins.reset()
    yield
    plugins.reset()


def test_grammar_backend_gets_the_airoboros_grammar_wrapper():
    llamacpp = plugins.get_backend("llamacpp")
    assert llamacpp.capabilities.grammar
    wrapper = choose_wrapper(None, llamacpp)
    assert wrapper.name == "airoboros-l2-70b-2.1-grammar"
    assert wrapper.grammar == "function-call"


def test_backend_without_grammars_gets_plain_airoboros():
    wrapper = choose_wrapper(None, NoGrammarBackend)
    assert wrapper.name == "airoboros-l2-70b-2.1"
    assert wrapper.grammar is None
    prompt = wrapper.prompt([{"role": "user", "content": "hi"}], [])
    assert prompt.endswith('{"function":'), "the plain variant primes the answer instead"


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("llamacpp", "airoboros-l2-70b-2.1-grammar"),
        ("koboldcpp", "airoboros-l2-70b-2.1-grammar"),
        ("webui", "airoboros-l2-70b-2.1-grammar"),
        # LM Studio takes a JSON schema (structured output), so it gets the grammar variant too.
        ("lmstudio", "airoboros-l2-70b-2.1-grammar"),
    ],
)
def test_default_wrapper_per_installed_backend_follows_the_seed_page(backend, expected):
    assert choose_wrapper(None, plugins.get_backend(backend)).name == expected


@pytest.mark.parametrize(
    "name", ["chatml", "chatml-grammar", "dolphin-2.1-mistral-7b", "dolphin-2.1-mistral-7b-grammar"]
)
def test_a_named_wrapper_wins_over_the_default(name):
    assert choose_wrapper(name, plugins.get_backend("llamacpp")).name == name
    assert choose_wrapper(name, NoGrammarBackend).name == name


def test_unknown_name_lists_the_installed_wrappers():
    with pytest.raises(NotInstalledError) as caught:
        choose_wrapper("airoboros-l2-70b-2.2", NoGrammarBackend)
    message = str(caught.value)
    assert "airoboros-l2-70b-2.2" in message
    for installed in ("airoboros-l2-70b-2.1", "chatml", "dolphin-2.1-mistral-7b-grammar"):
        assert installed in message
