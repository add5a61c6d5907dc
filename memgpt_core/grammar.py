"""The grammar-provider contract: function schemas in, a grammar that admits only a valid call out."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

FunctionSchema = dict[str, Any]


class GrammarProvider(abc.ABC):
    """Subclass this and register the class with ``register_grammars``.

    ``formats`` lists what ``build`` can produce: ``"gbnf"`` (llama.cpp, KoboldCpp, text-generation-webui) and/or
    ``"json_schema"`` (llama.cpp's ``json_schema``, LM Studio's ``response_format``).
    """

    name: ClassVar[str]
    formats: ClassVar[frozenset[str]]
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def build(
        self,
        functions: list[FunctionSchema],
        *,
        format: str,
        inner_thoughts_in_params: bool = True,
        max_string_length: int | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """Return grammar text in ``format`` admitting exactly ``{"function": NAME, "params": {...}}`` calls.

        ``max_string_length`` caps every free string. ``max_tokens`` is the completion's token budget: keep every
        call the grammar admits within it (for example by capping strings tighter where a function has more of them),
        so that an answer cut off at the budget is rare. Either may be None (no limit); anything but a whole number
        of at least 1 raises ``GrammarError``. Both belong in the cache key: ``build`` runs before every completion.
        """
