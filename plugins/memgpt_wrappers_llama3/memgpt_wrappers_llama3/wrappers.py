"""The Llama 3 Instruct format, as Meta's chat template renders it.

Each turn is ``<|start_header_id|>ROLE<|end_header_id|>``, a blank line, the text with surrounding whitespace
trimmed (the official template trims it too), then ``<|eot_id|>``; the prompt ends with the assistant's header and
its blank line. ``<|begin_of_text|>`` is the BOS token, which the server adds, so it is not written here: written
out, it would reach the model twice.
"""

from __future__ import annotations

from collections.abc import Mapping

from memgpt_core.prompting import JSONCallWrapper, chat_turns
from memgpt_core.wrapper import Message

START_HEADER, END_HEADER, EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
FUNCTION_ROLE = "ipython"
"""The role Meta's Llama 3.1 prompt-format documentation gives to the output of a tool call."""


class Llama3Wrapper(JSONCallWrapper):
    """Llama 3 Instruct, answer primed with the opening of a JSON call."""

    name = "llama3"
    description = (
        "Llama 3 Instruct format (<|start_header_id|>role<|end_header_id|> ... <|eot_id|>), "
        "the answer primed with the opening of a JSON call"
    )
    # <|eot_id|> ends a turn; a header would start another. <|end_of_text|> is the base model's end token, and
    # Llama 3.1 ends a turn with <|eom_id|> when it expects a tool's output next.
    stop_sequences = (EOT, START_HEADER, "<|end_of_text|>", "<|eom_id|>")

    def render(self, messages: list[Message], instructions: str, answers: Mapping[int, str]) -> str:
        # Meta documents the ipython role for what a tool returns (Llama 3.1), so a function's result has a turn of
        # its own that the model does not take for the user's words. Later system messages (core memory, alerts)
        # keep the system header.
        turns = chat_turns(messages, instructions, answers)
        parts = [_turn(FUNCTION_ROLE if turn.role == "function" else turn.role, turn.labelled) for turn in turns]
        return "".join(parts) + f"{START_HEADER}assistant{END_HEADER}\n\n"


class Llama3GrammarWrapper(Llama3Wrapper):
    """Llama 3 Instruct with grammar sampling: no primed opening, the grammar forces the call."""

    name = "llama3-grammar"
    description = "Llama 3 Instruct format with grammar-constrained JSON calls"
    grammar = "function-call"


def _turn(role: str, text: str) -> str:
    return f"{START_HEADER}{role}{END_HEADER}\n\n{text.strip()}{EOT}"
