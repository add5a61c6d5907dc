"""The Airoboros 2.1 chat format: a preamble, then ``USER:`` and ``ASSISTANT:`` turns, one per line."""

from __future__ import annotations

from collections.abc import Mapping

from memgpt_core.prompting import JSONCallWrapper, chat_turns
from memgpt_core.wrapper import Message

DEFAULT_PREAMBLE = "A chat."
"""Airoboros 2.1's own system line, used when the conversation has no system message."""
FUNCTION_RESULT = "FUNCTION RESULT"


class Airoboros21Wrapper(JSONCallWrapper):
    """Airoboros 2.1, answer primed with the opening of a JSON call."""

    name = "airoboros-l2-70b-2.1"
    description = "Airoboros 2.1 format (USER:/ASSISTANT:), the answer primed with the opening of a JSON call"
    stop_sequences = ("\nUSER:", "\nASSISTANT:", f"\n{FUNCTION_RESULT}", "\nSYSTEM:", "</s>")
    answer_separator = " "

    def render(self, messages: list[Message], instructions: str, answers: Mapping[int, str]) -> str:
        system, *rest = chat_turns(messages, instructions, answers, preamble=DEFAULT_PREAMBLE)
        lines = [f"{system.text}\n"]
        for turn in rest:
            if turn.role == "function":
                lines.append(f"{FUNCTION_RESULT} ({turn.name or 'function'}): {turn.text}")
            else:  # USER:, ASSISTANT:, and SYSTEM: for a later system message (an alert)
                lines.append(f"{turn.role.upper()}: {turn.text}")
        lines.append("ASSISTANT:")
        return "\n".join(lines)


class Airoboros21GrammarWrapper(Airoboros21Wrapper):
    """Airoboros 2.1 with grammar sampling: no primed opening, the grammar forces the call."""

    name = "airoboros-l2-70b-2.1-grammar"
    description = "Airoboros 2.1 format with grammar-constrained JSON calls"
    grammar = "function-call"
