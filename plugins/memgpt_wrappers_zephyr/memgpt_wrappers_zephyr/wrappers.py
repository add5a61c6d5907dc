"""The Zephyr format, as HuggingFaceH4's zephyr-7b-beta chat template renders it.

Each turn is a role marker (``<|system|>``, ``<|user|>`` or ``<|assistant|>``) on its own line, the text, then the
end-of-sequence token ``</s>`` and a newline; the prompt ends with ``<|assistant|>`` and a newline, where the model
starts its answer. The template writes no BOS token: the server adds it.
"""

from __future__ import annotations

from collections.abc import Mapping

from memgpt_core.prompting import JSONCallWrapper
from memgpt_core.wrapper import Message

SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
EOS = "</s>"


class ZephyrWrapper(JSONCallWrapper):
    """Zephyr 7B, answer primed with the opening of a JSON call."""

    name = "zephyr-7B"
    description = (
        "Zephyr format (<|system|>/<|user|>/<|assistant|> turns ending in </s>), "
        "the answer primed with the opening of a JSON call"
    )
    # The end of the model's turn, and any role marker it might go on to write for a turn that is not its own.
    stop_sequences = (EOS, USER, SYSTEM, ASSISTANT)

    def render(self, messages: list[Message], instructions: str, answers: Mapping[int, str]) -> str:
        turns = list(enumerate(messages))
        system = instructions
        if turns and turns[0][1].get("role") == "system":
            system = f"{_text(turns.pop(0)[1])}\n\n{instructions}"
        parts = [_turn(SYSTEM, system)]
        for i, message in turns:
            role = message.get("role")
            if role == "assistant":
                parts.append(_turn(ASSISTANT, answers[i]))
            elif role in ("function", "tool"):
                # Zephyr's template knows only system, user and assistant. A result in a user turn could pass for
                # something the user said, and in an assistant turn for something the model wrote itself; a
                # labelled system turn is neither, so the result goes there.
                name = message.get("name") or "the function"
                parts.append(_turn(SYSTEM, f"Result of {name}: {_text(message)}"))
            elif role == "system":  # core memory, sent as a second system message, and alerts
                parts.append(_turn(SYSTEM, _text(message)))
            else:  # the user, or a role the format has no marker for
                parts.append(_turn(USER, _text(message)))
        return "".join(parts) + f"{ASSISTANT}\n"


class ZephyrGrammarWrapper(ZephyrWrapper):
    """Zephyr 7B with grammar sampling: no primed opening, the grammar forces the call."""

    name = "zephyr-7B-grammar"
    description = "Zephyr format with grammar-constrained JSON calls"
    grammar = "function-call"


def _turn(marker: str, text: str) -> str:
    return f"{marker}\n{text}{EOS}\n"


def _text(message: Message) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""
