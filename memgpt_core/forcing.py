"""Text a GBNF grammar forces: the start every sentence shares, and the grammar of what may follow a known start.

Where a grammar leaves the model exactly one way to go on (``{"function": "`` of a function call), sampling that text
token by token wastes a decoding step per token; appending it to the prompt costs next to nothing with the server's
prompt cache. :func:`forced_prefix` finds that text and the grammar of the rest; :func:`advance` gives the grammar of
what may follow any text the model has already written, so the next forced stretch can be found after it::

    forced = forced_prefix(grammar)               # Forced(text='{"function": "', grammar=...)
    rest = advance(grammar, '{"function": "send_message')
    forced_prefix(rest).text                      # '", "params": {"inner_thoughts": "'

Both work on any GBNF text, not only the grammars this project builds. The reader follows llama.cpp's own grammar
parser (``llama_grammar_parser`` in ``src/llama-grammar.cpp``) in what it accepts:

- a rule is ``name ::= alternatives``, names being letters, digits and ``-``; a rule ends at a line break, except
  after ``::=``, after ``|`` and inside parentheses, where line breaks are spaces; ``#`` starts a comment to the end
  of the line; a rule defined twice keeps its last definition; a reference to a rule never defined is an error;
- elements are ``"literals"`` and ``[classes]`` (``[^...]`` negated; ``a-z`` ranges) whose characters may be escaped
  as ``\\xHH``, ``\\uHHHH``, ``\\UHHHHHHHH``, ``\\t``, ``\\r``, ``\\n``, ``\\\\``, ``\\"``, ``\\[``, ``\\]`` and
  ``\\-`` (any other escape is an error), ``.`` for any character, rule references, groups ``( ... )``, and token
  elements ``<[id]>``, ``<text>`` and ``!<...>`` (kept as they are, never forced);
- postfix ``*``, ``+``, ``?``, ``{m}``, ``{m,}`` and ``{m,n}``; a minimum above 2000 is an error and a maximum
  above 2000 means no maximum (llama.cpp's ``MAX_REPETITION_THRESHOLD``).

The residual grammars are written so that llama.cpp reads them: every original rule is kept (the old root renamed
when the new root takes its name), and the new root says what may follow. A residual is exact: a text ``rest`` is
admitted by it exactly when ``text + rest`` is admitted by the original grammar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from memgpt_core.errors import GrammarError

MAX_REPETITION = 2000
"""llama.cpp's ``MAX_REPETITION_THRESHOLD``: a larger minimum is refused, a larger maximum means none."""
MAX_FORCED_CHARS = 100_000
"""Forcing stops here: a grammar may force more (``"a"{2000}`` nested), but no prompt needs that much."""
START = "root"
"""The rule llama.cpp starts from; residual grammars start there too, whatever rule they were made from."""
MAX_RESIDUALS = 512
"""The most ways a text may be read before :func:`advance` gives up on writing them all out."""

# -- the syntax tree ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    """A literal string (already decoded)."""

    text: str


@dataclass(frozen=True)
class Cls:
    """A character class: inclusive code point ranges, or any code point outside them when ``negated``."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False

    def matches(self, ch: str) -> bool:
        code = ord(ch)
        return any(lo <= code <= hi for lo, hi in self.ranges) != self.negated

    def single(self) -> str | None:
        """The one character this class admits, if it admits exactly one."""
        if not self.negated and self.ranges and all(r == (self.ranges[0][0],) * 2 for r in self.ranges):
            return chr(self.ranges[0][0])
        return None


@dataclass(frozen=True)
class AnyChar:
    """``.``: any one character."""


@dataclass(frozen=True)
class Token:
    """A token element (``<[id]>``, ``<text>``, ``!<...>``), kept as written; it matches tokens, not text."""

    raw: str


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Alt:
    """Alternatives, each a sequence of items (a group, or a rule's body)."""

    options: tuple[tuple[Item, ...], ...]


@dataclass(frozen=True)
class Rep:
    """``item`` between ``low`` and ``high`` (None: no limit) times."""

    item: Item
    low: int
    high: int | None


Item = Union[Lit, Cls, AnyChar, Token, Ref, Alt, Rep]  # noqa: UP007 (a runtime alias, read by dataclasses)
Seq = tuple[Item, ...]


@dataclass
class Grammar:
    """A parsed grammar: rule bodies by name, in the order they were first defined."""

    rules: dict[str, Alt] = field(default_factory=dict)


@dataclass(frozen=True)
class Forced:
    """The text every sentence of a grammar starts with, and the grammar of the rest (``sentence = text + rest``)."""

    text: str
    grammar: str


# -- reading GBNF, as llama.cpp's parser does -----------------------------------------------------------------------

_WORD = re.compile(r"[a-zA-Z0-9-]+")
_HEX = {"x": 2, "u": 4, "U": 8}
_SIMPLE_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-"}


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> GrammarError:
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        near = self.text[self.pos : self.pos + 30]
        return GrammarError(
            f"the GBNF grammar cannot be read at line {line}, column {column}: {what} (near {near!r})",
            fix="correct the grammar there; llama.cpp's test-gbnf-validator or llama-server names the same place",
        )

    def peek(self, offset: int = 0) -> str:
        at = self.pos + offset
        return self.text[at] if at < len(self.text) else ""

    def space(self, newline_ok: bool) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "#":
                while self.pos < len(text) and text[self.pos] not in "\r\n":
                    self.pos += 1
            elif ch in " \t" or (newline_ok and ch in "\r\n"):
                self.pos += 1
            else:
                break

    def name(self) -> str:
        match = _WORD.match(self.text, self.pos)
        if not match:
            raise self.fail("expecting a rule name")
        self.pos = match.end()
        return match.group()

    def integer(self) -> int:
        match = re.compile(r"[0-9]+").match(self.text, self.pos)
        if not match:
            raise self.fail("expecting a whole number")
        self.pos = match.end()
        return int(match.group())

    def char(self) -> str:
        if self.pos >= len(self.text):
            raise self.fail("unexpected end of input")
        ch = self.text[self.pos]
        if ch != "\\":
            self.pos += 1
            return ch
        kind = self.peek(1)
        if kind in _HEX:
            digits = self.text[self.pos + 2 : self.pos + 2 + _HEX[kind]]
            if len(digits) != _HEX[kind] or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise self.fail(f"expecting {_HEX[kind]} hex digits after \\{kind}")
            self.pos += 2 + _HEX[kind]
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail(f"\\{kind}{digits} is not a character")
            return chr(code)
        if kind in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[kind]
        raise self.fail("unknown escape")

    def grammar(self) -> Grammar:
        out = Grammar()
        referenced: dict[str, int] = {}
        self.space(True)
        while self.pos < len(self.text):
            name = self.name()
            self.space(False)
            if not self.text.startswith("::=", self.pos):
                raise self.fail("expecting ::=")
            self.pos += 3
            self.space(True)
            out.rules[name] = self.alternates(False, referenced)
            if self.peek() == "\r":
                self.pos += 2 if self.peek(1) == "\n" else 1
            elif self.peek() == "\n":
                self.pos += 1
            elif self.pos < len(self.text):
                raise self.fail("expecting a line break or the end after the rule")
            self.space(True)
        for name, at in referenced.items():
            if name not in out.rules:
                self.pos = at
                raise self.fail(f"the rule {name!r} is used but never defined")
        return out

    def alternates(self, nested: bool, referenced: dict[str, int]) -> Alt:
        options = [self.sequence(nested, referenced)]
        while self.peek() == "|":
            self.pos += 1
            self.space(True)
            options.append(self.sequence(nested, referenced))
        return Alt(tuple(options))

    def sequence(self, nested: bool, referenced: dict[str, int]) -> Seq:
        items: list[Item] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if ch == '"':
                self.pos += 1
                chars = []
                while self.peek() != '"':
                    if self.pos >= len(self.text):
                        raise self.fail("unexpected end of input inside a literal")
                    chars.append(self.char())
                self.pos += 1
                items.append(Lit("".join(chars)))
            elif ch == "[":
                self.pos += 1
                negated = self.peek() == "^"
                if negated:
                    self.pos += 1
                ranges = []
                while self.peek() != "]":
                    if self.pos >= len(self.text):
                        raise self.fail("unexpected end of input inside a character class")
                    low = self.char()
                    high = low
                    if self.peek() == "-" and self.peek(1) != "]":
                        self.pos += 1
                        high = self.char()
                    ranges.append((ord(low), ord(high)))
                self.pos += 1
                items.append(Cls(tuple(ranges), negated))
            elif ch in "<!":
                start = self.pos
                if ch == "!":
                    self.pos += 1
                if self.peek() != "<":
                    raise self.fail("expecting '<' of a token")
                end = self.text.find(">", self.pos)
                if end < 0:
                    raise self.fail("expecting '>' to close the token")
                self.pos = end + 1
                items.append(Token(self.text[start : self.pos]))
            elif _WORD.match(ch):
                at = self.pos
                name = self.name()
                referenced.setdefault(name, at)
                items.append(Ref(name))
            elif ch == "(":
                self.pos += 1
                self.space(True)
                group = self.alternates(True, referenced)
                if self.peek() != ")":
                    raise self.fail("expecting ')'")
                self.pos += 1
                items.append(group)
            elif ch == ".":
                self.pos += 1
                items.append(AnyChar())
            elif ch in "*+?{":
                if not items:
                    raise self.fail(f"{ch!r} follows nothing it could repeat")
                self.pos += 1
                if ch == "{":
                    self.space(nested)
                    low = self.integer()
                    self.space(nested)
                    high: int | None = low
                    if self.peek() == ",":
                        self.pos += 1
                        self.space(nested)
                        high = self.integer() if self.peek().isdigit() else None
                        self.space(nested)
                    if self.peek() != "}":
                        raise self.fail("expecting '}'")
                    self.pos += 1
                    if low > MAX_REPETITION:
                        raise self.fail(f"a repetition of at least {low} is more than llama.cpp allows")
                    if high is not None and high > MAX_REPETITION:
                        high = None  # what llama.cpp makes of it
                    if high is not None and high < low:
                        raise self.fail(f"the maximum {high} is below the minimum {low}")
                else:
                    low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
                items[-1] = Rep(items[-1], low, high)
            else:
                break
            self.space(nested)
        return tuple(items)


def parse(text: str) -> Grammar:
    """Read GBNF text into rules; a text llama.cpp would refuse raises :class:`GrammarError` naming the place."""
    return _Reader(text).grammar()


# -- writing GBNF ---------------------------------------------------------------------------------------------------


def _escape(ch: str, special: str) -> str:
    code = ord(ch)
    if ch in special or code < 0x20 or code == 0x7F:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", '"': '\\"'}.get(ch, f"\\x{code:02X}")
    if code >= 0x80 and not ch.isprintable():
        return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"
    return ch


def write_literal(text: str) -> str:
    """``text`` as a GBNF literal."""
    return '"' + "".join(_escape(ch, '"\\') for ch in text) + '"'


def _write_class(item: Cls) -> str:
    def one(code: int) -> str:
        return _escape(chr(code), '"\\[]-^')

    body = "".join(one(lo) if lo == hi else f"{one(lo)}-{one(hi)}" for lo, hi in item.ranges)
    return f"[{'^' if item.negated else ''}{body}]"


def write_item(item: Item) -> str:
    if isinstance(item, Lit):
        return write_literal(item.text)
    if isinstance(item, Cls):
        return _write_class(item)
    if isinstance(item, AnyChar):
        return "."
    if isinstance(item, Token):
        return item.raw
    if isinstance(item, Ref):
        return item.name
    if isinstance(item, Alt):
        return f"( {write_alt(item)} )"
    inner = item.item
    text = write_item(inner)
    if isinstance(inner, Alt) and len(inner.options) == 1 and len(inner.options[0]) == 1:
        text = write_item(inner.options[0][0])  # a group of one item needs no parentheses
        if isinstance(inner.options[0][0], Rep):
            text = f"( {text} )"
    low, high = item.low, item.high
    if (low, high) == (0, None):
        return text + "*"
    if (low, high) == (1, None):
        return text + "+"
    if (low, high) == (0, 1):
        return text + "?"
    if high is None:
        return f"{text}{{{low},}}"
    if low == high:
        return f"{text}{{{low}}}"
    return f"{text}{{{low},{high}}}"


def write_seq(seq: Seq) -> str:
    return " ".join(write_item(i) for i in seq) if seq else '""'


def write_alt(alt: Alt) -> str:
    return " | ".join(write_seq(s) for s in alt.options)


def write(grammar: Grammar) -> str:
    return "".join(f"{name} ::= {write_alt(body)}\n" for name, body in grammar.rules.items())


# -- what is forced ---------------------------------------------------------------------------------------------------


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


class _Forcer:
    """Walks the deterministic structure from a start: literals, one-character classes, the mandatory copies of a
    repetition, rules and groups (the common start of their alternatives)."""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self.active: set[str] = set()

    def seq(self, seq: Seq, budget: int) -> tuple[str, bool]:
        """The text ``seq`` forces, and whether that text is all it admits."""
        out = ""
        for item in seq:
            text, whole = self.item(item, budget - len(out))
            out += text
            if not whole or len(out) >= budget:
                return out, False
        return out, True

    def item(self, item: Item, budget: int) -> tuple[str, bool]:
        if isinstance(item, Lit):
            return item.text, True
        if isinstance(item, Cls):
            single = item.single()
            return (single, True) if single is not None else ("", False)
        if isinstance(item, Ref):
            if item.name in self.active:
                return "", False  # recursion: whatever it forces, stop before it
            self.active.add(item.name)
            try:
                return self.alt(self.grammar.rules[item.name], budget)
            finally:
                self.active.discard(item.name)
        if isinstance(item, Alt):
            return self.alt(item, budget)
        if isinstance(item, Rep):
            if item.high == 0:
                return "", True
            if item.low == 0:
                return "", False
            text, whole = self.item(item.item, budget)
            if not whole:
                return text, False
            copies = min(item.low, budget // max(len(text), 1) + 1)
            return text * copies, whole and copies == item.low == item.high
        return "", False  # any character, a token

    def alt(self, alt: Alt, budget: int) -> tuple[str, bool]:
        found = [self.seq(option, budget) for option in alt.options]
        texts = [text for text, _ in found]
        if all(whole for _, whole in found) and len(set(texts)) == 1:
            return texts[0], True
        return _common_prefix(texts), False


# -- what may follow a text -------------------------------------------------------------------------------------------


class _Unsure(Exception):
    """The text cannot be followed exactly (a token element, left recursion, too many readings)."""


class _Advancer:
    """Consumes a text through the grammar, keeping every reading: each ends where the text ends, with the rest of
    the sentence still to come (a sequence of items)."""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self.entered: set[tuple[str, int]] = set()

    # An outcome is (left, rest): ``left`` is the text not yet consumed (then ``rest`` is empty: the item is
    # complete), or "" with ``rest`` what remains of the item after the whole text.

    def seq(self, seq: Seq, text: str) -> list[tuple[str, Seq]]:
        if not text:
            return [("", seq)]
        if not seq:
            return [(text, ())]
        out: list[tuple[str, Seq]] = []
        for left, rest in self.item(seq[0], text):
            if left:
                out.extend(self.seq(seq[1:], left))
            else:
                out.append(("", rest + seq[1:]))
        return _distinct(out)

    def item(self, item: Item, text: str) -> list[tuple[str, Seq]]:
        if isinstance(item, Lit):
            if text.startswith(item.text):
                return [(text[len(item.text) :], ())]
            if item.text.startswith(text):
                return [("", (Lit(item.text[len(text) :]),))]
            return []
        if isinstance(item, Cls):
            return [(text[1:], ())] if item.matches(text[0]) else []
        if isinstance(item, AnyChar):
            return [(text[1:], ())]
        if isinstance(item, Token):
            raise _Unsure("the text runs into a token element, which matches tokens rather than text")
        if isinstance(item, Ref):
            key = (item.name, len(text))
            if key in self.entered:
                raise _Unsure(f"the rule {item.name!r} is left-recursive")
            self.entered.add(key)
            try:
                return self.item(self.grammar.rules[item.name], text)
            finally:
                self.entered.discard(key)
        if isinstance(item, Alt):
            return _distinct([outcome for option in item.options for outcome in self.seq(option, text)])
        return self.repeat(item, text)

    def repeat(self, item: Rep, text: str) -> list[tuple[str, Seq]]:
        """Copy by copy, without recursion (a long string is one repetition of many characters)."""
        out: list[tuple[str, Seq]] = []
        pending = {text}
        copies = 0
        while pending:
            following: set[str] = set()
            for left in pending:
                if copies >= item.low:
                    out.append((left, ()))  # the repetition ends here
                if item.high is not None and copies >= item.high:
                    continue
                for after, rest in self.item(item.item, left):
                    if after:
                        if after != left or copies < item.low:  # an empty optional copy adds nothing new
                            following.add(after)
                    else:
                        more = _rep(item.item, max(item.low - copies - 1, 0), _less(item.high, copies + 1))
                        out.append(("", rest + more))
            copies += 1
            pending = following
        return _distinct(out)


def _distinct(outcomes: list[tuple[str, Seq]]) -> list[tuple[str, Seq]]:
    """The outcomes without repeats; more than :data:`MAX_RESIDUALS` ways to go on from the end of the text is
    more than is worth writing out. (Outcomes that leave text over are not counted: most die at the next item.)"""
    unique = list(dict.fromkeys(outcomes))
    if sum(1 for left, _ in unique if not left) > MAX_RESIDUALS:
        raise _Unsure(f"the text can be read in more than {MAX_RESIDUALS} ways")
    return unique


def _less(high: int | None, taken: int) -> int | None:
    return None if high is None else high - taken


def _rep(item: Item, low: int, high: int | None) -> Seq:
    if high == 0:
        return ()
    return (Rep(item, low, high),)


def _fresh(grammar: Grammar, base: str) -> str:
    name, n = base, 1
    while name in grammar.rules:
        name, n = f"{base}-{n}", n + 1
    return name


def _renamed(item: Item, old: str, new: str) -> Item:
    if isinstance(item, Ref):
        return Ref(new) if item.name == old else item
    if isinstance(item, Alt):
        return Alt(tuple(tuple(_renamed(i, old, new) for i in option) for option in item.options))
    if isinstance(item, Rep):
        return Rep(_renamed(item.item, old, new), item.low, item.high)
    return item


def _merge_literals(seq: Seq) -> Seq:
    out: list[Item] = []
    for item in seq:
        if isinstance(item, Lit) and not item.text:
            continue
        if isinstance(item, Lit) and out and isinstance(out[-1], Lit):
            out[-1] = Lit(out[-1].text + item.text)
        else:
            out.append(item)
    return tuple(out)


def _with_root(grammar: Grammar, body: Alt) -> str:
    """The grammar's rules, with ``body`` as the rule llama.cpp starts from, ``root`` (a rule of that name already
    there is renamed, and referred to by its new name)."""
    rules = dict(grammar.rules)
    if START in rules:
        old = _fresh(grammar, f"{START}-0")
        rules = {(old if name == START else name): _renamed(rule, START, old) for name, rule in rules.items()}
        body = _renamed(body, START, old)  # type: ignore[assignment]
    return write(Grammar({START: body, **rules}))


def _check_root(grammar: Grammar, root: str) -> None:
    if root not in grammar.rules:
        raise GrammarError(
            f"the GBNF grammar has no rule named {root!r} to start from",
            fix=f"define {root} ::= ..., or name the start rule you meant",
        )


def _residual(grammar: Grammar, root: str, text: str) -> Alt | None:
    try:
        outcomes = _Advancer(grammar).item(Ref(root), text)
    except (_Unsure, RecursionError):
        return None
    rests: dict[str, Seq] = {}
    for left, rest in outcomes:
        if not left:
            rest = _merge_literals(rest)
            rests.setdefault(write_seq(rest), rest)
    if not rests:
        raise GrammarError(
            f"no sentence of the grammar starts with {text[:80]!r}",
            fix="advance only by text the model wrote under this grammar",
        )
    return Alt(tuple(rests.values()))


def advance(grammar_text: str, text: str, root: str = "root") -> str | None:
    """The grammar of what may follow ``text``: GBNF admitting ``rest`` exactly when the grammar admits
    ``text + rest``. None when that cannot be written out here (the text runs into a token element, through a
    left-recursive rule, or can be read in too many ways). A text no sentence starts with raises
    :class:`GrammarError`."""
    grammar = parse(grammar_text)
    _check_root(grammar, root)
    body = _residual(grammar, root, text)
    return None if body is None else _with_root(grammar, body)


def forced_prefix(grammar_text: str, root: str = "root") -> Forced:
    """The text every sentence of the grammar starts with, as far as the grammar's deterministic structure shows
    it, and the grammar of the rest. An empty text (nothing forced) comes with the grammar unchanged."""
    grammar = parse(grammar_text)
    _check_root(grammar, root)
    text, _whole = _Forcer(grammar).item(Ref(root), MAX_FORCED_CHARS)
    body = _residual(grammar, root, text) if text else None
    if body is None:  # nothing forced (a forced text crosses no token or recursion, so its residual is written)
        unchanged = grammar_text if root == START else _with_root(grammar, grammar.rules[root])
        return Forced("", unchanged)
    return Forced(text, _with_root(grammar, body))


__all__ = ["Forced", "advance", "forced_prefix", "parse", "write", "write_literal"]
