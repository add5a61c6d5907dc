"""The Airoboros 2.1 chat format: a preamble, then ``USER:`` and ``ASSISTANT:`` turns, one per line."""

from __future__ import annotations

from collections.abc import Mapping

from memgpt_core.prompting import JSONCallWrapper
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
        preamble = DEFAULT_PREAMBLE
        turns = list(enumerate(messages))
        if turns and turns[0][1].get("role") == "system":
            preamble = _text(turns.pop(0)[1])
        lines = [f"{preamble}\n\n{instructions}\n"]
        for i, message in turns:
            role = message.get("role")
            if role == "user":
                lines.append(f"USER: {_text(message)}")
            elif role == "assistant":
                lines.append(f"ASSISTANT: {answers[i]}")
            elif role in ("function", "tool"):
                lines.append(f"{FUNCTION_RESULT} ({message.get('name') or 'function'}): {_text(message)}")
            else:  # a later system message (an alert), or a role this format has no word for
                lines.append(f"{str(role or 'system').upper()}: {_text(message)}")
        lines.append("ASSISTANT:")
        return "\n".join(lines)


class Airoboros21GrammarWrapper(Airoboros21Wrapper):
    """Airoboros 2.1 with grammar sampling: no primed opening, the grammar forces the call."""

    name = "airoboros-l2-70b-2.1-grammar"
    description = "Airoboros 2.1 format with grammar-constrained JSON calls"
    grammar = "function-call"


def _text(message: Message) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""
