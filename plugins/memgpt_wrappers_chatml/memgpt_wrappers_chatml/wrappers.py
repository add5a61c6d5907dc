"""The ChatML format: each turn is ``<|im_start|>ROLE`` on its own line, the text, then ``<|im_end|>``.

Dolphin 2.1 Mistral and the embedded SmolLM2 model were both trained on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from memgpt_core.prompting import JSONCallWrapper, chat_turns
from memgpt_core.wrapper import Message

START, END = "<|im_start|>", "<|im_end|>"


class ChatMLWrapper(JSONCallWrapper):
    """ChatML, answer primed with the opening of a JSON call."""

    name = "chatml"
    description = "ChatML format (<|im_start|>role ... <|im_end|>), the answer primed with the opening of a JSON call"
    # <|endoftext|> and </s> end the turn for models whose end-of-text token is not <|im_end|>.
    stop_sequences = (END, START, "<|endoftext|>", "</s>")

    def render(self, messages: list[Message], instructions: str, answers: Mapping[int, str]) -> str:
        # A function's result keeps a role of its own, so the model does not take it for something the user said.
        turns = chat_turns(messages, instructions, answers)
        return "".join(_turn(turn.role, turn.labelled) for turn in turns) + f"{START}assistant\n"


class ChatMLGrammarWrapper(ChatMLWrapper):
    """ChatML with grammar sampling: no primed opening, the grammar forces the call."""

    name = "chatml-grammar"
    description = "ChatML format with grammar-constrained JSON calls"
    grammar = "function-call"


class Dolphin21Wrapper(ChatMLWrapper):
    """Dolphin 2.1 Mistral 7B, which speaks ChatML."""

    name = "dolphin-2.1-mistral-7b"
    description = "Dolphin 2.1 Mistral (ChatML), the answer primed with the opening of a JSON call"


class Dolphin21GrammarWrapper(ChatMLGrammarWrapper):
    """Dolphin 2.1 Mistral 7B with grammar sampling."""

    name = "dolphin-2.1-mistral-7b-grammar"
    description = "Dolphin 2.1 Mistral (ChatML) with grammar-constrained JSON calls"


def _turn(role: str, text: str) -> str:
    return f"{START}{role}\n{text}{END}\n"
