"""Built-in grammar provider "function-call": GBNF or a JSON Schema admitting exactly one call to an offered function.

The call shape is the one MemGPT's wrappers read: ``{"function": NAME, "params": {"inner_thoughts": "...", ...}}``.
Both formats come from one JSON Schema of the call (:func:`call_schema`), so they describe the same calls; the
GBNF form additionally fixes the order of keys to the declared order, which is the order the prompt shows.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, ClassVar

from memgpt_core import hookimpl
from memgpt_core.grammar import FunctionSchema, GrammarProvider

INNER_THOUGHTS = "inner_thoughts"
HEARTBEAT = "request_heartbeat"
# Words that only describe a schema; dropped so the grammar and the cache key depend on its shape alone.
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "$schema", "$id"})
_CACHE_SIZE = 256


class FunctionCallGrammar(GrammarProvider):
    """Grammars generated from the function schemas, cached by their content."""

    name = "function-call"
    formats = frozenset({"gbnf", "json_schema"})
    description = "exact grammars for MemGPT's function-call JSON, generated from the function schemas"

    # Shared by every instance: the grammar depends only on the key, never on the instance.
    _cache: ClassVar[dict[str, str]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def build(
        self,
        functions: list[FunctionSchema],
        *,
        format: str,
        inner_thoughts_in_params: bool = True,
        max_string_length: int | None = None,
        max_tokens: int | None = None,
    ) -> str:
        key = cache_key(
            functions,
            format=format,
            inner_thoughts_in_params=inner_thoughts_in_params,
            max_string_length=max_string_length,
            max_tokens=max_tokens,
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        from memgpt_core.gbnf import GrammarError, schema_to_gbnf

        if format not in self.formats:
            raise GrammarError(
                f"the {self.name!r} grammar provider cannot write the format {format!r}",
                fix=f"ask for one of: {', '.join(sorted(self.formats))}",
            )
        schema = call_schema(
            functions,
            inner_thoughts_in_params=inner_thoughts_in_params,
            max_string_length=max_string_length,
            max_tokens=max_tokens,
            format=format,
        )
        if format == "gbnf":
            text = schema_to_gbnf(schema, where="function")
        else:
            text = json.dumps(_without_visible_pattern(schema), ensure_ascii=False)
        with self._lock:  # two agents in one process may build at once; only the eviction needs care
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)), None)
            self._cache[key] = text
        return text


def cache_key(
    functions: list[FunctionSchema],
    *,
    format: str,
    inner_thoughts_in_params: bool,
    max_string_length: int | None,
    max_tokens: int | None = None,
) -> str:
    """A stable hash of the schemas and options. Key order is kept, not sorted: it decides the grammar's key order."""
    text = json.dumps(
        [format, inner_thoughts_in_params, max_string_length, max_tokens, functions],
        ensure_ascii=False,
        separators=(",", ":"),
        default=repr,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def call_schema(
    functions: list[FunctionSchema],
    *,
    inner_thoughts_in_params: bool = True,
    max_string_length: int | None = None,
    max_tokens: int | None = None,
    format: str = "gbnf",
) -> dict[str, Any]:
    """The JSON Schema of one call to one of ``functions``, in the shape MemGPT's wrappers read.

    Free strings (no ``enum``, ``const`` or shorter ``maxLength`` of their own) get a ``maxLength`` of at most
    ``max_string_length``. With ``max_tokens``, every part of a call that can grow is bounded so that any call the
    grammar admits fits in that many tokens (see :func:`_fit`): strings by ``maxLength``, arrays by ``maxItems``,
    objects of free keys by ``maxProperties`` and ``propertyNames``; numbers are bounded by their digits. The
    estimate counts numbers as ``format`` admits them (llama.cpp's JSON Schema converter allows longer ones than
    the GBNF), so the bounds can differ a little between the two forms of the same functions.
    """
    from memgpt_core.gbnf import GrammarError

    for option, value in (("max_string_length", max_string_length), ("max_tokens", max_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise GrammarError(
                f"{option} must be a whole number of at least 1, not {value!r}",
                fix=f"pass {option} as a positive int, or None for no limit",
            )
    if not functions:
        raise GrammarError(
            "no function schemas were given, so there is no call a grammar could admit",
            fix="offer the agent at least one function, or use a wrapper without -grammar",
        )
    options: list[dict[str, Any]] = []
    seen: set[str] = set()
    for raw in functions:
        fn = raw.get("function", raw) if isinstance(raw, dict) and raw.get("type") == "function" else raw
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name:
            raise GrammarError(
                f"a function schema has no name: {json.dumps(raw, default=repr)[:80]}",
                fix='give every function schema a "name" (OpenAI function format)',
            )
        if name in seen:
            raise GrammarError(f"the function {name!r} is offered twice", fix="offer each function once")
        seen.add(name)
        option = _call_option(name, fn.get("parameters") or {}, inner_thoughts_in_params)
        # A bound a function declares on its inner thoughts narrows them after the budget is shared: it does not
        # hand their room to the other values (a message would grow to fill it).
        thoughts = option["properties"]["params"]["properties"].get(INNER_THOUGHTS, {})
        declared = {k: thoughts.pop(k) for k in ("maxLength", "minLength") if k in thoughts}
        if max_tokens is not None:
            option = _fit(option, max_tokens, max_string_length=max_string_length, format=format)
        elif max_string_length is not None:
            option = _capped(option, max_string_length)
        if declared:
            bounded = option["properties"]["params"]["properties"][INNER_THOUGHTS]
            if "maxLength" in declared:
                cap = bounded.get("maxLength")
                bounded["maxLength"] = min(cap, declared["maxLength"]) if _is_int(cap) else declared["maxLength"]
            if "minLength" in declared:
                bounded["minLength"] = min(declared["minLength"], bounded.get("maxLength", declared["minLength"]))
        options.append(option)
    if len(options) == 1:
        return options[0]
    # anyOf, not oneOf: the constant names already make the options exclusive, and anyOf is cheaper to check.
    return {"type": "object", "anyOf": options}


def _call_option(name: str, parameters: dict[str, Any], inner_thoughts: bool) -> dict[str, Any]:
    from memgpt_core.gbnf import GrammarError

    where = f"function {name!r}"
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise GrammarError(
            f"{where}: parameters must be a JSON Schema object with properties",
            fix='write parameters as {"type": "object", "properties": {...}, "required": [...]}',
        )
    defs = {**parameters.get("definitions", {}), **parameters.get("$defs", {})}
    declared = parameters.get("properties") or {}
    required = list(parameters.get("required") or [])
    missing = [r for r in required if r not in declared]
    if missing:
        raise GrammarError(
            f"{where}: required lists {', '.join(map(repr, missing))}, which its properties do not declare",
            fix="declare every required parameter under properties, or drop it from required",
        )
    properties: dict[str, Any] = {}
    if inner_thoughts:
        # A function may bound its own inner thoughts by declaring them (the agent declares them to keep the
        # monologue short); only the length bounds of that declaration are taken, the value is always a string.
        own = declared.get(INNER_THOUGHTS)
        bounds = {k: v for k, v in own.items() if k in ("maxLength", "minLength")} if isinstance(own, dict) else {}
        properties[INNER_THOUGHTS] = {"type": "string", **bounds}
        required = [INNER_THOUGHTS, *(r for r in required if r != INNER_THOUGHTS)]
    for key, sub in declared.items():
        if inner_thoughts and key == INNER_THOUGHTS:
            continue
        if key == HEARTBEAT:
            # The agent reads it as a boolean to decide whether to step again; any other type would be misread.
            properties[key] = {"type": "boolean"}
        else:
            properties[key] = _normalize(sub, defs, f"{where}, parameter {key!r}", ())
    return {
        "title": name,
        "type": "object",
        "properties": {
            "function": {"const": name},
            "params": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
        "required": ["function", "params"],
        "additionalProperties": False,
    }


def _normalize(schema: Any, defs: dict[str, Any], where: str, refs: tuple[str, ...]) -> Any:
    """One parameter's schema, ready for both formats: local $refs inlined, ``nullable`` spelled as JSON Schema,
    annotations dropped, and objects closed to keys they do not declare."""
    from memgpt_core.gbnf import GrammarError

    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        target = None
        for prefix in ("#/$defs/", "#/definitions/"):
            if isinstance(ref, str) and ref.startswith(prefix):
                target = defs.get(ref[len(prefix) :])
        if target is None:
            raise GrammarError(
                f"{where}: cannot resolve $ref {ref!r}", fix="define it under the parameters' $defs, or inline it"
            )
        if ref in refs:
            raise GrammarError(f"{where}: $ref {ref!r} refers to itself, which a grammar cannot bound")
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _normalize(merged, defs, where, (*refs, ref))
    out = {k: v for k, v in schema.items() if k not in _ANNOTATIONS and k not in ("nullable", "$defs", "definitions")}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _normalize(v, defs, f"{where}.{k}", refs) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _normalize(out[key], defs, where, refs)
    for key in ("anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_normalize(s, defs, where, refs) for s in out[key]]
    kind = out.get("type")
    for name in kind if isinstance(kind, list) else [kind]:
        if name is not None and name not in _PYTHON_TYPES:
            raise GrammarError(
                f"{where}: {json.dumps(name)} is not a JSON Schema type",
                fix=f"use one of {', '.join(_PYTHON_TYPES)}",
            )
    if schema.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _without_visible_pattern(schema: Any) -> Any:
    """The schema without ``"pattern": "^\\S"``, for servers that convert JSON Schema themselves: llama.cpp's
    converter refuses a pattern not anchored at both ends. The function still refuses a blank value."""
    from memgpt_core.gbnf import VISIBLE_START

    if isinstance(schema, list):
        return [_without_visible_pattern(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        k: _without_visible_pattern(v)
        for k, v in schema.items()
        if not (k == "pattern" and v == VISIBLE_START and schema.get("type") == "string")
    }


def _capped(schema: Any, cap: int) -> Any:
    """``schema`` with every free string's ``maxLength`` at most ``cap`` (used when there is no token budget)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _capped(v, cap) for k, v in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _capped(out[key], cap)
    for key in ("anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_capped(s, cap) for s in out[key]]
    if _is_free_string(out):
        existing = out.get("maxLength")
        out["maxLength"] = min(cap, existing) if _is_int(existing) else cap
    return out


MIN_STRING_CAP = 16
"""The shortest cap a budget can force on a string: below it, even a short message or date would not fit."""

MAX_ITEMS_UNDECLARED = 16
"""The most items (or keys, for an object of free keys) a budget gives a collection that declares no maximum."""

ITEM_OVERHEAD = 5
"""Tokens reserved per array item besides the item itself: its comma (half a token, rounded up) and two
whitespace places (after the comma, after the item)."""

PAIR_OVERHEAD = 11
"""Tokens reserved per key of an object of free keys besides its key's text and its value: the key's quotes, the
colon and the comma (two characters, so one token each way they are counted, rounded up), and four whitespace
places."""

JSON_NUMBER_WIDTH = 52
"""The longest number llama.cpp's JSON Schema converter admits: its number rule is a sign, 16 digits, a point, 16
digits, an "e", a sign and 16 more digits; it reads no bound of a number schema (only of integers)."""

Part = tuple[int, int | None]
"""One growable part of a call, in tokens: the least it can be given (a string of :data:`MIN_STRING_CAP`
characters, an array of its fewest items at their shortest), and the most it can use: a number if it is bounded of
itself (a string with its own ``maxLength``, an array with ``maxItems`` of fixed-size items), None if only the budget
bounds it."""

Shape = tuple[int, int, int, tuple[Part, ...]]
"""A schema's worst case: (fixed characters, whitespace places, digits, growable parts). Fixed characters are the
text the grammar dictates (keys, quotes, punctuation, enum values, booleans); digits are the characters of numbers,
which the model writes freely; each growable part (a free string, an array, an object of free keys, a free value)
gets its own share of the budget."""


def string_cap(
    option: dict[str, Any], *, max_string_length: int | None, max_tokens: int | None, format: str = "gbnf"
) -> int | None:
    """The cap on the free strings at the top of one function's call (``inner_thoughts`` and the parameters), so
    that the whole call fits in ``max_tokens``; see :func:`_fit` for how it is worked out."""
    if max_tokens is None:
        return max_string_length
    fixed, spaces, digits, parts = _shape(option, format)
    if not parts:
        return max_string_length
    return _string_limit(_share(max_tokens - _cost(fixed, spaces, digits), parts), max_string_length)


def _fit(schema: Any, tokens: int, *, max_string_length: int | None, format: str) -> Any:
    """``schema`` with every part that can grow bounded, so that any value it admits takes at most ``tokens``.

    The estimate, made as for a whole call: the value's fixed text at two characters per token, two tokens (a line
    break and an indent) for every place whitespace may go, and its digits and the characters of its strings at
    one token each, which is the most a token can cost in ASCII text. After the fixed part and the digits, what
    is left is shared equally by the growable parts; a part that needs less than its share (a string whose own
    ``maxLength`` is short, an array of short fixed items with a small ``maxItems``) keeps what it needs and leaves
    the rest to the others, and a part that cannot be made smaller than its least (a string of
    :data:`MIN_STRING_CAP` characters, an array of one item, or ``minItems``, at its shortest) gets its least, the
    others sharing what remains. A free string's share is its ``maxLength``; an array's share decides how many items
    it may hold and how long their own strings may be (see :func:`_bound_array`). So only a budget too small for
    the call at its least is exceeded.
    """
    fixed, spaces, digits, parts = _shape(schema, format)
    share = _share(tokens - _cost(fixed, spaces, digits), parts)
    return _bound(schema, share, max_string_length=max_string_length, format=format)


def _cost(fixed: int, spaces: int, digits: int) -> int:
    return -(-fixed // 2) + 2 * spaces + digits


def _share(available: int, parts: tuple[Part, ...]) -> int:
    """The largest equal share of ``available`` tokens the parts can have: each part gets the share, but never less
    than its least nor more than its most (0 when even the leasts do not fit)."""

    def used(share: int) -> int:
        return sum(max(share, least) if most is None else min(max(share, least), most) for least, most in parts)

    low, high = 0, max(available, 0)
    while low < high:
        mid = (low + high + 1) // 2
        if used(mid) <= available:
            low = mid
        else:
            high = mid - 1
    return low


def _string_limit(share: int, max_string_length: int | None) -> int:
    cap = max(MIN_STRING_CAP, share)
    return cap if max_string_length is None else min(cap, max_string_length)


def _bound(schema: Any, share: int, *, max_string_length: int | None, format: str) -> Any:
    """``schema`` with each growable part bounded to ``share`` tokens (strings, arrays, objects of free keys)."""
    if not isinstance(schema, dict) or not schema or "const" in schema or "enum" in schema:
        return schema
    again = {"max_string_length": max_string_length, "format": format}
    out = dict(schema)
    for key in ("anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_bound(s, share, **again) for s in out[key]]
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _bound(v, share, **again) for k, v in out["properties"].items()}
    kinds = _kinds(out)
    if _is_free_string(out):
        existing = out.get("maxLength")
        cap = _string_limit(share, max_string_length)
        out["maxLength"] = min(cap, existing) if _is_int(existing) else cap
    if "array" in kinds:
        out = _bound_array(out, share, **again)
    extra = out.get("additionalProperties")
    if "object" in kinds and not out.get("properties") and isinstance(extra, dict) and extra:
        out = _bound_map(out, share, **again)  # (an empty schema is any value: such an object cannot be bounded)
    return out


def _bound_array(schema: dict[str, Any], share: int, *, max_string_length: int | None, format: str) -> dict[str, Any]:
    """An array's item count and items bounded to ``share`` tokens.

    The count is as many items as fit at their shortest (strings at :data:`MIN_STRING_CAP`), no more than the
    array's own ``maxItems`` or, without one, :data:`MAX_ITEMS_UNDECLARED`; never fewer than ``minItems`` or one.
    Each item then gets an equal part of the share, which bounds its own strings and arrays in turn.
    """
    declared, low = schema.get("maxItems"), schema.get("minItems", 0)
    if declared == 0:
        return schema
    items = schema.get("items", {})
    fixed, spaces, digits, parts = _shape(items, format)
    structure = ITEM_OVERHEAD + _cost(fixed, spaces, digits)
    smallest = structure + sum(least for least, _ in parts)
    share = max(share, smallest * max(low if _is_int(low) else 0, 1))
    count = share // max(smallest, 1)
    count = min(count, declared if _is_int(declared) else MAX_ITEMS_UNDECLARED)
    count = max(count, low if _is_int(low) else 0, 1)
    item_share = _share(share // count - structure, parts)
    out = {**schema, "maxItems": count}
    if isinstance(items, dict) and items:
        out["items"] = _bound(items, item_share, max_string_length=max_string_length, format=format)
    return out


def _bound_map(schema: dict[str, Any], share: int, *, max_string_length: int | None, format: str) -> dict[str, Any]:
    """An object of free keys: its number of keys, their length and their values bounded to ``share`` tokens, as
    an array's items are (each key is one more free string of the pair)."""
    declared, low = schema.get("maxProperties"), schema.get("minProperties", 0)
    if declared == 0:
        return schema
    value = schema["additionalProperties"]
    fixed, spaces, digits, parts = _shape(value, format)
    parts = ((MIN_STRING_CAP, None), *parts)  # the key
    structure = PAIR_OVERHEAD + _cost(fixed, spaces, digits)
    smallest = structure + sum(least for least, _ in parts)
    share = max(share, smallest * max(low if _is_int(low) else 0, 1))
    count = share // max(smallest, 1)
    count = min(count, declared if _is_int(declared) else MAX_ITEMS_UNDECLARED)
    count = max(count, low if _is_int(low) else 0, 1)
    pair_share = _share(share // count - structure, parts)
    names = schema.get("propertyNames") if isinstance(schema.get("propertyNames"), dict) else {}
    key_cap = _string_limit(pair_share, max_string_length)
    if _is_int(names.get("maxLength")):
        key_cap = min(key_cap, names["maxLength"])
    return {
        **schema,
        "maxProperties": count,
        "propertyNames": {**names, "maxLength": key_cap},
        "additionalProperties": _bound(value, pair_share, max_string_length=max_string_length, format=format),
    }


def _shape(schema: Any, format: str = "gbnf") -> Shape:
    """The largest :data:`Shape` a normalized schema admits in ``format``, counted the way that form lays it out:
    in GBNF, an object of n keys has 4n whitespace places (after "{", around each ":", after each value) and an array
    has one after "[" and two per item; llama.cpp's JSON Schema converter allows one more after every closing
    bracket. A string, an array, an object of free keys and a free value are growable parts; a string with a
    ``maxLength`` of its own, and an array with a ``maxItems`` of fixed-size items, say how much they need."""
    extra = 1 if format == "json_schema" else 0
    if not isinstance(schema, dict) or not schema:
        return 2, extra, 0, ((MIN_STRING_CAP, None),)  # any JSON value: it cannot be bounded, it gets a share
    if "const" in schema:
        return len(json.dumps(schema["const"], ensure_ascii=False)), 0, 0, ()
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return max(len(json.dumps(v, ensure_ascii=False)) for v in schema["enum"]), 0, 0, ()
    options = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(options, list) and options:
        base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        return _widest(_shape({**base, **o} if isinstance(o, dict) else o, format) for o in options)
    kind = schema.get("type")
    if isinstance(kind, list) and kind:
        return _widest(_shape({**schema, "type": k}, format) for k in kind)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    if kind == "object":
        properties = schema.get("properties")
        if isinstance(properties, dict) and properties:
            fixed, spaces, digits = 1 + len(properties), 4 * len(properties) + extra, 0  # braces and commas
            parts: tuple[Part, ...] = ()
            for key, sub in properties.items():
                f, w, d, p = _shape(sub, format)
                fixed += len(json.dumps(key, ensure_ascii=False)) + 1 + f
                spaces, digits, parts = spaces + w, digits + d, parts + p
            return fixed, spaces, digits, parts
        if schema.get("additionalProperties", True) is False or schema.get("maxProperties") == 0:
            return 2, 1 + extra, 0, ()
        value = schema.get("additionalProperties")
        f, w, d, p = _shape(value if isinstance(value, dict) else {}, format)
        low = schema.get("minProperties", 0)
        least = max(low if _is_int(low) else 0, 1) * (PAIR_OVERHEAD + _cost(f, w, d) + MIN_STRING_CAP)
        return 2, 1 + extra, 0, ((least + sum(n for n, _ in p), None),)  # its keys and values share one part
    if kind == "array":
        high = schema.get("maxItems")
        if high == 0:
            return 2, 1 + extra, 0, ()
        f, w, d, p = _shape(schema.get("items", {}), format)
        item = ITEM_OVERHEAD + _cost(f, w, d)
        low = schema.get("minItems", 0)
        least = max(low if _is_int(low) else 0, 1) * (item + sum(n for n, _ in p))
        most = None
        if _is_int(high) and all(m is not None for _, m in p):
            most = max(least, high * (item + sum(m for _, m in p)))  # type: ignore[misc]
        return 2, 1 + extra, 0, ((least, most),)
    if kind == "string":
        high = schema.get("maxLength")
        return 2, 0, 0, ((min(high, MIN_STRING_CAP), high) if _is_int(high) else (MIN_STRING_CAP, None),)
    if kind == "integer":
        from memgpt_core.gbnf import integral_digits

        sign, digits = integral_digits(schema)
        return 0, 0, int(sign) + digits, ()
    if kind == "number":
        if format == "json_schema":
            return 0, 0, JSON_NUMBER_WIDTH, ()
        from memgpt_core.gbnf import FRACTION_DIGITS, integral_digits

        sign, digits = integral_digits(schema)
        return 0, 0, int(sign) + digits + 1 + FRACTION_DIGITS, ()
    if kind == "boolean":
        return 5, 0, 0, ()
    if kind == "null":
        return 4, 0, 0, ()
    return 2, extra, 0, ((MIN_STRING_CAP, None),)


def _widest(shapes: Any) -> Shape:
    """The worst case of several alternatives: the most of each count, and the alternative with the most parts
    (among those, the one whose parts are least bounded)."""
    shapes = list(shapes)
    fixed, spaces, digits = (max(s[i] for s in shapes) for i in range(3))
    parts = max((s[3] for s in shapes), key=lambda p: (len(p), sum(m is None for _, m in p), sum(n for n, _ in p)))
    return fixed, spaces, digits, parts


def _kinds(schema: dict[str, Any]) -> list[Any]:
    kind = schema.get("type")
    if kind is None:
        return ["object"] if "properties" in schema else ["array"] if "items" in schema else []
    return kind if isinstance(kind, list) else [kind]


def _is_free_string(schema: dict[str, Any]) -> bool:
    return "string" in _kinds(schema) and "enum" not in schema and "const" not in schema


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def call_problem(text: str, functions: list[FunctionSchema], *, inner_thoughts_in_params: bool = True) -> str | None:
    """Why ``text`` is not a usable call to one of ``functions``, or None if it is.

    Usable means: strict JSON, a known function name, and every required argument present with its declared type
    (and enum). Written apart from the generator, with plain Python checks, so it can judge the generator's output.
    """
    try:
        call = json.loads(text)
    except ValueError as exc:
        return f"not JSON ({exc})"
    if not isinstance(call, dict) or not isinstance(call.get("function"), str):
        return 'no "function" name'
    by_name = {(f.get("function", f) if f.get("type") == "function" else f)["name"]: f for f in functions}
    fn = by_name.get(call["function"])
    if fn is None:
        return f"unknown function {call['function']!r}"
    fn = fn.get("function", fn) if fn.get("type") == "function" else fn
    params = call.get("params")
    if not isinstance(params, dict):
        return '"params" is not an object'
    parameters = fn.get("parameters") or {}
    required = list(parameters.get("required") or [])
    if inner_thoughts_in_params:
        required.append(INNER_THOUGHTS)
    for key in required:
        if key not in params:
            return f"{call['function']}: missing {key!r}"
        declared = {"type": "string"} if key == INNER_THOUGHTS else (parameters.get("properties") or {}).get(key, {})
        if not _has_type(params[key], declared):
            return f"{call['function']}: {key!r} is {json.dumps(params[key])[:40]}, not {json.dumps(declared)[:80]}"
    return None


def _has_type(value: Any, schema: dict[str, Any]) -> bool:
    if "enum" in schema:
        return value in schema["enum"]
    if value is None and schema.get("nullable") is True:
        return True
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    for kind in kinds:
        if kind is None:
            return True
        if isinstance(value, bool) and kind not in ("boolean",):
            continue  # bool is an int in Python, never in JSON
        if isinstance(value, _PYTHON_TYPES.get(kind, ())):
            return True
    return False


@hookimpl
def register_grammars(register):
    register(FunctionCallGrammar)
