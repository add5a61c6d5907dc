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
    ) -> str:
        """Return grammar text in ``format`` admitting exactly ``{"function": NAME, "params": {...}}`` calls."""
