"""ChatML and Dolphin prompt wrappers for memgpt (not implemented yet)."""

from __future__ import annotations

from memgpt_core import hookimpl
from memgpt_core.errors import NotImplementedPluginError
from memgpt_core.wrapper import PromptWrapper


class ChatMLWrapper(PromptWrapper):
    name = "chatml"

    def chat_completion_to_prompt(self, messages, functions, first_message=False):  # type: ignore[override]
        raise NotImplementedPluginError(f"the {self.name} wrapper is not implemented yet")


class ChatMLGrammarWrapper(ChatMLWrapper):
    name = "chatml-grammar"
    grammar = "function-call"


class Dolphin21Wrapper(ChatMLWrapper):
    name = "dolphin-2.1-mistral-7b"


class Dolphin21GrammarWrapper(ChatMLGrammarWrapper):
    name = "dolphin-2.1-mistral-7b-grammar"


@hookimpl
def register_wrappers(register):
    for cls in (ChatMLWrapper, ChatMLGrammarWrapper, Dolphin21Wrapper, Dolphin21GrammarWrapper):
        register(cls)
