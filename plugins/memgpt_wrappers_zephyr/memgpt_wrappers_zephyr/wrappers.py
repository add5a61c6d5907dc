"""The Zephyr format, as HuggingFaceH4's zephyr-7b-beta chat template renders it.

Each turn is a role marker (``<|system|>``, ``<|user|>`` or ``<|assistant|>``) on its own line, the text, then the
end-of-sequence token ``</s>`` and a newline; the prompt ends with ``<|assistant|>`` and a newline, where the model
starts its answer. The template writes no BOS token: the server adds it.
"""

from __future__ import annotations

from collections.abc import Mapping

from memgpt_core.prompting import JSONCallWrapper, chat_turns
from memgpt_core.wrapper import Message

SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
EOS = "</s>"
MARKERS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT, "function": SYSTEM}
"""The marker of each turn; a function's result is a system turn (see ``render``)."""


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
        # Zephyr's template knows only system, user and assistant. A result in a user turn could pass for something
        # the user said, and in an assistant turn for something the model wrote itself; a labelled system turn is
        # neither, so the result goes there.
        turns = chat_turns(messages, instructions, answers)
        return "".join(_turn(MARKERS[turn.role], turn.labelled) for turn in turns) + f"{ASSISTANT}\n"


class ZephyrGrammarWrapper(ZephyrWrapper):
    """Zephyr 7B with grammar sampling: no primed opening, the grammar forces the call."""

    name = "zephyr-7B-grammar"
    description = "Zephyr format with grammar-constrained JSON calls"
    grammar = "function-call"


def _turn(marker: str, text: str) -> str:
    return f"{marker}\n{text}{EOS}\n"
