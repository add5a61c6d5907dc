"""Airoboros 2.1 prompt wrappers for memgpt (not implemented yet)."""

from __future__ import annotations

from memgpt_core import hookimpl
from memgpt_core.errors import NotImplementedPluginError
from memgpt_core.wrapper import PromptWrapper


class Airoboros21Wrapper(PromptWrapper):
    name = "airoboros-l2-70b-2.1"

    def chat_completion_to_prompt(self, messages, functions, first_message=False):  # type: ignore[override]
        raise NotImplementedPluginError(f"the {self.name} wrapper is not implemented yet")


class Airoboros21GrammarWrapper(Airoboros21Wrapper):
    name = "airoboros-l2-70b-2.1-grammar"
    grammar = "function-call"


@hookimpl
def register_wrappers(register):
    register(Airoboros21Wrapper)
    register(Airoboros21GrammarWrapper)
