"""The prompt-wrapper contract: chat messages and function schemas to one prompt string, and raw text back to a call.

The two method names are MemGPT's (``LLMChatCompletionWrapper``), so a wrapper written for MemGPT ports with a
registration hook and little else. Any class with those two methods can be registered; ``PromptWrapper`` adds the
shared repair step and the grammar plumbing.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Protocol, runtime_checkable

Message = dict[str, Any]
"""An OpenAI-style chat message: role system, user, assistant (with optional function_call) or function."""
FunctionSchema = dict[str, Any]
"""An OpenAI-style function schema: name, description, parameters (JSON Schema object)."""


@runtime_checkable
class ChatCompletionWrapper(Protocol):
    """What core needs from a wrapper. MemGPT's wrappers already have this shape."""

    def chat_completion_to_prompt(
        self, messages: list[Message], functions: list[FunctionSchema], first_message: bool = False
    ) -> str: ...

    def output_to_chat_completion_response(self, raw_llm_output: str) -> dict[str, Any]: ...


class PromptWrapper(abc.ABC):
    """Base class for wrappers that use core's output repair and, for ``-grammar`` variants, a grammar provider.

    Class attributes:
      ``name``: what users type after ``--model``.
      ``grammar``: the grammar provider to ask for when this is a grammar variant, else None.
      ``stop_sequences``: the stop strings of the prompt format.
      ``inner_thoughts_in_params``: the model writes its inner monologue as the ``inner_thoughts`` parameter.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    grammar: ClassVar[str | None] = None
    stop_sequences: ClassVar[tuple[str, ...]] = ()
    inner_thoughts_in_params: ClassVar[bool] = True

    def __init__(self) -> None:
        self.functions: list[FunctionSchema] = []

    @abc.abstractmethod
    def chat_completion_to_prompt(
        self, messages: list[Message], functions: list[FunctionSchema], first_message: bool = False
    ) -> str:
        """Render the whole conversation as one prompt, ending where the model's answer starts."""

    def output_to_chat_completion_response(self, raw_llm_output: str) -> dict[str, Any]:
        """Read the model's text as a call to one of the functions of the last prompt, repairing what is safe.

        Raises ``memgpt_core.errors.ParseError`` with the raw text and the reason when there is no honest reading.
        """
        from memgpt_core.repair import parse_function_call

        call = parse_function_call(
            self.answer_prefix() + raw_llm_output,
            self.functions,
            inner_thoughts_in_params=self.inner_thoughts_in_params,
        )
        return call.to_chat_completion_response()

    def answer_prefix(self) -> str:
        """Text the prompt ends with that belongs to the answer (a primed opening brace, say), or ''."""
        return ""
