"""Built-in grammar provider: function-call grammars generated from the function schemas (not implemented yet)."""

from __future__ import annotations

from memgpt_core import hookimpl
from memgpt_core.errors import NotImplementedPluginError
from memgpt_core.grammar import GrammarProvider


class FunctionCallGrammar(GrammarProvider):
    name = "function-call"
    formats = frozenset({"gbnf", "json_schema"})

    def build(self, functions, *, format, inner_thoughts_in_params=True, max_string_length=None):  # type: ignore[override]
        raise NotImplementedPluginError("the built-in function-call grammar provider is not implemented yet")


@hookimpl
def register_grammars(register):
    register(FunctionCallGrammar)
