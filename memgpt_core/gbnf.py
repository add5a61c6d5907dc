"""GBNF (llama.cpp's grammar format) from JSON Schema: a small converter for the subset function schemas use.

Supported: ``type`` (one or a list) string, integer, number, boolean, null, array (``items``, ``minItems``,
``maxItems``), object (``properties``, ``required``; or ``additionalProperties`` as a value schema, with
``minProperties``, ``maxProperties`` and a ``propertyNames`` of ``minLength``/``maxLength``), ``enum``, ``const``,
``anyOf``/``oneOf``, ``minLength``/``maxLength`` on strings, and an empty schema (any JSON value). Integers and
numbers have at most 16 digits before the point (numbers: at most 6 after it, and no exponent); a ``minimum`` of 0
or more drops the minus sign (on integers ``minimum >= 1`` also drops zero), and ``minimum`` and ``maximum`` together
bound the number of digits to those of the wider bound. Anything else raises :class:`GrammarError` naming where it
was found.

Two limits of llama.cpp's grammar parser shape the output (``src/llama-grammar.cpp``): a bound ``x{m,n}`` above
2000 is silently read as unbounded, and the product of the bounds of all repetitions in one sequence must stay
under 2000, or the whole grammar is refused. So every bounded repetition sits alone in a rule of its own, and a
longer string cap is built from 1000-character chunks.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from memgpt_core.errors import GrammarError as GrammarError  # raised here; defined with the other errors

# llama.cpp's MAX_REPETITION_THRESHOLD: the largest bound its parser keeps.
MAX_REPETITION = 2000
_CHUNK = 1000
MAX_DIGITS = 16
"""The most digits an integer, or a number before its point, may have: enough for any count or amount a function
takes, and a bound the model cannot run past."""
FRACTION_DIGITS = 6
"""The most digits a number may have after its point."""

# JSON is written in one layout, the one json.dumps writes by default: ", " between items, ": " after a key, nothing
# inside brackets and braces. The model never chooses whitespace, so everything between two values is forced text
# (see memgpt_core.forcing), which a client appends to the prompt instead of sampling it.
ITEM_SEPARATOR = ", "
KEY_SEPARATOR = ": "
_PRIMITIVES: dict[str, tuple[str, tuple[str, ...]]] = {
    # Any character JSON allows raw inside a string, or any of JSON's escapes. Quotes, brackets and braces are
    # ordinary characters here; only the unescaped quote, the backslash and control characters are not.
    "string-char": (r'[^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )', ()),
    "string": (r'"\"" string-char* "\""', ("string-char",)),
    # A first character that is not whitespace (raw, or an escaped quote, backslash or slash): for "pattern": "^\\S".
    "visible-char": (r'[^"\\\x00-\x20] | "\\" ["\\/]', ()),
    # Sixteen digits at most: enough for any integer a function takes, and a bound the model cannot run past.
    "digits": (r'"0" | [1-9] [0-9]{0,15}', ()),
    "positive-digits": (r"[1-9] [0-9]{0,15}", ()),
    "integer": (r'"-"? digits', ("digits",)),
    # Numbers are written plainly (no exponent), so their length is bounded by their digits.
    "fraction": ('"." [0-9]{1,' + str(FRACTION_DIGITS) + "}", ()),
    "number": (r'"-"? digits fraction?', ("digits", "fraction")),
    "boolean": (r'"true" | "false"', ()),
    "null": (r'"null"', ()),
    "value": (
        r"object | array | string | number | boolean | null",
        ("object", "array", "string", "number", "boolean", "null"),
    ),
    "object": (r'"{" ( string ": " value ( ", " string ": " value )* )? "}"', ("string", "value")),
    "array": (r'"[" ( value ( ", " value )* )? "]"', ("value",)),
}

VISIBLE_START = "^\\S"
"""The one ``pattern`` the converter enforces: the string starts with a non-whitespace character (so it is not blank).
Other patterns are not enforced."""

_JSON_TYPES = ("string", "integer", "number", "boolean", "null", "array", "object")


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_literal(value: Any) -> str:
    """The GBNF literal that matches ``value`` written as compact-spaced JSON."""
    return literal(json.dumps(value, ensure_ascii=False))


def rule_name(text: str) -> str:
    """A GBNF rule name (letters, digits, dashes) made from ``text``."""
    name = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return name or "rule"


class Converter:
    """Collects the rules of one grammar. ``visit`` turns a schema into a GBNF expression, adding rules it needs.

    A rule whose body is already defined under another name is reused, so the text stays small and the output
    depends only on the schemas.
    """

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}

    def grammar(self, root: dict[str, Any], *, where: str = "schema") -> str:
        """The full grammar text, with ``root`` as the start rule."""
        self.rules["root"] = ""  # reserve the name so no other rule takes it
        self.rules["root"] = self.visit(root, "call", where)
        return "".join(f"{name} ::= {body}\n" for name, body in self.rules.items())

    def add(self, name: str, body: str) -> str:
        """Define ``name ::= body`` (renamed if taken) and return the name to refer to it by."""
        if body in self._by_body:
            return self._by_body[body]
        base = rule_name(name)
        unique, n = base, 2
        while unique in self.rules or unique in _PRIMITIVES:
            unique, n = f"{base}-{n}", n + 1
        self.rules[unique] = body
        self._by_body[body] = unique
        return unique

    def primitive(self, name: str) -> str:
        if name not in self.rules:
            body, needs = _PRIMITIVES[name]
            self.rules[name] = body
            self._by_body[body] = name
            for need in needs:
                self.primitive(need)
        return name

    def visit(self, schema: Any, name: str, where: str) -> str:
        if schema is True or schema == {}:
            return self.primitive("value")
        if not isinstance(schema, dict):
            raise GrammarError(f"{where}: expected a JSON Schema object, found {json.dumps(schema)[:60]}")
        unsupported = sorted(set(schema) & {"$ref", "allOf", "not", "if", "patternProperties", "prefixItems"})
        if unsupported:
            raise GrammarError(
                f"{where}: the grammar generator does not support {', '.join(unsupported)}",
                fix="write the parameter with plain types (and inline any $ref), or use a wrapper without -grammar",
            )
        if isinstance(schema.get("title"), str) and schema["title"]:
            # A title names the rule (which makes the grammar easier to read) and the place in error messages.
            name = schema["title"]
            where = f"{where} {name!r}"
        if "const" in schema:
            return json_literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise GrammarError(f"{where}: enum must be a non-empty list")
            return self.add(name, " | ".join(json_literal(v) for v in values))
        alternatives = schema.get("anyOf", schema.get("oneOf"))
        if alternatives is not None:
            if not isinstance(alternatives, list) or not alternatives:
                raise GrammarError(f"{where}: anyOf/oneOf must be a non-empty list")
            base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            parts = [
                self.visit(
                    {**base, **alt} if isinstance(alt, dict) else alt,
                    f"{name}-{i}",
                    where if isinstance(alt, dict) and "title" in alt else f"{where} (option {i})",
                )
                for i, alt in enumerate(alternatives)
            ]
            return self.add(name, " | ".join(parts))
        kind = schema.get("type")
        if isinstance(kind, list):
            parts = [self.visit({**schema, "type": k}, f"{name}-{k}", where) for k in kind]
            return parts[0] if len(parts) == 1 else self.add(name, " | ".join(parts))
        if schema.get("nullable") is True:
            inner = {k: v for k, v in schema.items() if k != "nullable"}
            return self.add(name, f"{self.visit(inner, name + '-value', where)} | {self.primitive('null')}")
        if kind is None:
            if "properties" in schema:
                kind = "object"
            elif "items" in schema:
                kind = "array"
            else:
                return self.primitive("value")
        if kind not in _JSON_TYPES:
            raise GrammarError(
                f"{where}: {json.dumps(kind)} is not a JSON Schema type",
                fix=f"use one of {', '.join(_JSON_TYPES)}",
            )
        return getattr(self, f"_{kind}")(schema, name, where)

    def _string(self, schema: dict[str, Any], name: str, where: str) -> str:
        low = _nonneg_int(schema.get("minLength", 0), "minLength", where)
        high = schema.get("maxLength")
        if schema.get("pattern") == VISIBLE_START:
            return self._visible_string(low, high, where)
        if high is None and low == 0:
            return self.primitive("string")
        self.primitive("string-char")
        if high is None:
            return self.add(f"string-min-{low}", f'"\\"" {self._repeat("string-char", low, None, where)} "\\""')
        high = _nonneg_int(high, "maxLength", where)
        if high < low:
            raise GrammarError(f"{where}: maxLength {high} is below minLength {low}")
        return self.add(f"string-max-{high}", f'"\\"" {self._repeat("string-char", low, high, where)} "\\""')

    def _visible_string(self, low: int, high: Any, where: str) -> str:
        """A string that starts with a visible character, then any characters, within its length bounds."""
        first = self.primitive("visible-char")
        self.primitive("string-char")
        if high is None:
            rest = self._repeat("string-char", max(low - 1, 0), None, where)
            return self.add(f"visible-string-min-{low}", f'"\\"" {first} {rest} "\\""')
        high = _nonneg_int(high, "maxLength", where)
        if high < max(low, 1):
            raise GrammarError(f"{where}: maxLength {high} leaves no room for the visible first character")
        rest = self._repeat("string-char", max(low - 1, 0), high - 1, where)
        return self.add(f"visible-string-max-{high}", f'"\\"" {first} {rest} "\\""')

    def _repeat(self, item: str, low: int, high: int | None, where: str) -> str:
        """A rule admitting ``item`` between ``low`` and ``high`` (None: no limit) times, exactly."""
        if high is None:
            if low <= MAX_REPETITION:
                return self.add(f"{item}-{low}-plus", f"{item}{{{low},}}")
            raise GrammarError(f"{where}: a minimum above {MAX_REPETITION} repetitions cannot be written in GBNF")
        if high <= MAX_REPETITION:
            return self.add(f"{item}-{low}-to-{high}", f"{item}{{{low},{high}}}")
        if low:
            raise GrammarError(
                f"{where}: a minimum length together with a maximum above {MAX_REPETITION} cannot be written in GBNF"
            )
        # Up to q*1000 + r items, exactly: either fewer than q whole chunks and then anything up to 999 more,
        # or exactly q chunks and at most r more.
        q, r = divmod(high, _CHUNK)
        if q > MAX_REPETITION:
            raise GrammarError(f"{where}: a maximum of {high} is too large to write in GBNF")
        chunk = self.add(f"{item}-chunk", f"{item}{{{_CHUNK}}}")
        fewer = self.add(f"{item}-chunks-0-to-{q - 1}", f"{chunk}{{0,{q - 1}}}")
        some = self.add(f"{item}-0-to-{_CHUNK - 1}", f"{item}{{0,{_CHUNK - 1}}}")
        exact = self.add(f"{item}-chunks-{q}", f"{chunk}{{{q}}}")
        rest = self.add(f"{item}-0-to-{r}", f"{item}{{0,{r}}}")
        return self.add(f"{item}-0-to-{high}", f"{fewer} {some} | {exact} {rest}")

    def _integer(self, schema: dict[str, Any], name: str, where: str) -> str:
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if _is_number(minimum) and _is_number(maximum) and maximum < minimum:
            raise GrammarError(f"{where}: maximum {maximum} is below minimum {minimum}")
        # GBNF cannot say "at most 360" short of spelling out every number, so the bound is on digits: up to 999
        # here. The function still checks the range and tells the model when it is out.
        sign, digits = integral_digits(schema)
        if sign:
            if digits == MAX_DIGITS:
                return self.primitive("integer")
            return self.add(f"integer-{digits}", f'"-"? {self._digits(digits)}')
        if _is_number(minimum) and minimum >= 1:
            more = digits - 1
            if more == MAX_DIGITS - 1:
                return self.primitive("positive-digits")
            return self.add(f"positive-digits-{digits}", "[1-9]" if more == 0 else f"[1-9] [0-9]{{0,{more}}}")
        return self._digits(digits)

    def _digits(self, digits: int) -> str:
        """A rule for a whole number of at most ``digits`` digits, without sign or leading zeros."""
        if digits >= MAX_DIGITS:
            return self.primitive("digits")
        more = digits - 1
        return self.add(f"digits-{digits}", "[0-9]" if more == 0 else f'"0" | [1-9] [0-9]{{0,{more}}}')

    def _number(self, schema: dict[str, Any], name: str, where: str) -> str:
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if _is_number(minimum) and _is_number(maximum) and maximum < minimum:
            raise GrammarError(f"{where}: maximum {maximum} is below minimum {minimum}")
        sign, digits = integral_digits(schema)
        if sign and digits == MAX_DIGITS:
            return self.primitive("number")
        fraction = self.primitive("fraction")
        body = f"{self._digits(digits)} {fraction}?"
        return self.add(f"number-{digits}" if sign else f"unsigned-number-{digits}", f'"-"? {body}' if sign else body)

    def _boolean(self, schema: dict[str, Any], name: str, where: str) -> str:
        return self.primitive("boolean")

    def _null(self, schema: dict[str, Any], name: str, where: str) -> str:
        return self.primitive("null")

    def _array(self, schema: dict[str, Any], name: str, where: str) -> str:
        item = self.visit(schema.get("items", {}), f"{name}-item", f"{where} items")
        low = _nonneg_int(schema.get("minItems", 0), "minItems", where)
        high = schema.get("maxItems")
        high = None if high is None else _nonneg_int(high, "maxItems", where)
        if high is not None and high < low:
            raise GrammarError(f"{where}: maxItems {high} is below minItems {low}")
        if high == 0:
            return self.add(name, literal("[]"))
        body = item
        if high != 1:
            more = self.add(f"{name}-more", f"{literal(ITEM_SEPARATOR)} {item}")
            body += " " + self._repeat(more, max(low - 1, 0), None if high is None else high - 1, where)
        return self.add(name, f'"[" {body} "]"' if low else f'"[" ( {body} )? "]"')

    def _object(self, schema: dict[str, Any], name: str, where: str) -> str:
        properties = schema.get("properties")
        if not properties:
            extra = schema.get("additionalProperties", True)
            if extra is True or extra == {}:
                return self.primitive("object")
            if extra is False:
                return self.add(name, literal("{}"))
            return self._map(schema, extra, name, where)
        if not isinstance(properties, dict):
            raise GrammarError(f"{where}: properties must be an object")
        required = schema.get("required", [])
        missing = [r for r in required if r not in properties]
        if missing:
            raise GrammarError(
                f"{where}: required lists {', '.join(missing)} but properties does not declare "
                f"{'it' if len(missing) == 1 else 'them'}",
                fix="declare every required parameter under properties, or drop it from required",
            )
        # Keys come in the declared order (the order the prompt shows them in); optional ones may be skipped.
        # Commas are the only difficulty: the first pair written has none. So there is one alternative per pair
        # that can come first (each up to and including the first required one), followed by the rest in order.
        # Each key is written together with the separators around it, as one literal: '", \"key\": "'.
        pairs = []
        for key, sub in properties.items():
            value = self.visit(sub, f"{name}-{key}", f"{where} > {key}")
            pairs.append((json.dumps(key, ensure_ascii=False) + KEY_SEPARATOR, value, key in required))
        starts: list[tuple[str, str]] = []  # (the first key, with what follows it)
        for i, (key, value, is_required) in enumerate(pairs):
            parts = [value]
            for later, later_value, later_required in pairs[i + 1 :]:
                pair = f"{literal(ITEM_SEPARATOR + later)} {later_value}"
                parts.append(pair if later_required else f"( {pair} )?")
            starts.append((key, " ".join(parts)))
            if is_required:
                break
        else:
            starts.append(("", ""))  # nothing is required: the empty object is allowed too
        if len(starts) == 1:
            # The opening brace joins the first key in one literal: one stretch of forced text, one element.
            key, rest = starts[0]
            return self.add(name, f'{literal("{" + key)} {rest} "}}"')
        options = " | ".join(f"{literal(key)} {rest}" if key else '""' for key, rest in starts)
        return self.add(name, f'"{{" ( {options} ) "}}"')

    def _map(self, schema: dict[str, Any], extra: Any, name: str, where: str) -> str:
        """An object of free keys whose values all follow ``extra``, within its bounds on keys and their length."""
        value = self.visit(extra, f"{name}-value", f"{where} values")
        names = schema.get("propertyNames", {})
        if not isinstance(names, dict) or set(names) - {"type", "minLength", "maxLength"}:
            raise GrammarError(f"{where}: propertyNames may only bound the length of the keys")
        key = self._string({"type": "string", **names}, f"{name}-key", where)
        low = _nonneg_int(schema.get("minProperties", 0), "minProperties", where)
        high = schema.get("maxProperties")
        high = None if high is None else _nonneg_int(high, "maxProperties", where)
        if high is not None and high < low:
            raise GrammarError(f"{where}: maxProperties {high} is below minProperties {low}")
        if high == 0:
            return self.add(name, literal("{}"))
        pair = self.add(f"{name}-pair", f"{key} {literal(KEY_SEPARATOR)} {value}")
        body = pair
        if high != 1:
            more = self.add(f"{name}-more", f"{literal(ITEM_SEPARATOR)} {pair}")
            body += " " + self._repeat(more, max(low - 1, 0), None if high is None else high - 1, where)
        return self.add(name, f'"{{" {body} "}}"' if low else f'"{{" ( {body} )? "}}"')


def integral_digits(schema: dict[str, Any]) -> tuple[bool, int]:
    """For an integer or number schema: whether a minus sign is allowed, and the most digits before the point.

    No minus sign when ``minimum`` is 0 or more; when both ``minimum`` and ``maximum`` are given, no more digits
    than the wider of them has; never more than :data:`MAX_DIGITS`.
    """
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    sign = not (_is_number(minimum) and minimum >= 0)
    if _is_number(minimum) and _is_number(maximum) and math.isfinite(minimum) and math.isfinite(maximum):
        widest = max(abs(minimum), abs(maximum))
        return sign, max(1, min(MAX_DIGITS, len(str(int(widest)))))
    return sign, MAX_DIGITS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _nonneg_int(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GrammarError(f"{where}: {key} must be a whole number of at least 0, found {json.dumps(value)}")
    return value


def schema_to_gbnf(schema: dict[str, Any], *, where: str = "schema") -> str:
    """GBNF text admitting exactly the JSON documents ``schema`` describes (for the supported subset)."""
    return Converter().grammar(schema, where=where)
