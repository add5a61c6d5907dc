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
) -> dict[str, Any]:
    """The JSON Schema of one call to one of ``functions``, in the shape MemGPT's wrappers read.

    Free strings (no ``enum``, ``const`` or shorter ``maxLength`` of their own) get a ``maxLength``: the one for each
    function is worked out from ``max_tokens`` (see :func:`string_cap`) and never exceeds ``max_string_length``.
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
        cap = string_cap(option, max_string_length=max_string_length, max_tokens=max_tokens)
        options.append(option if cap is None else _capped(option, cap))
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
        properties[INNER_THOUGHTS] = {"type": "string"}
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
    """``schema`` with every free string's ``maxLength`` at most ``cap``."""
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
    kind = out.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if is_string and "enum" not in out and "const" not in out:
        existing = out.get("maxLength")
        out["maxLength"] = min(cap, existing) if _is_int(existing) else cap
    return out


MIN_STRING_CAP = 16
"""The shortest cap a budget can force on a string: below it, even a short message or date would not fit."""


def string_cap(option: dict[str, Any], *, max_string_length: int | None, max_tokens: int | None) -> int | None:
    """The cap on each free string of one function's call, so that the whole call fits in ``max_tokens``.

    The call's structure is reserved first, as an estimate: its fixed text (keys, quotes, punctuation, the longest
    enum value, numbers at their most digits) at two characters per token, and two tokens (a line break and an
    indent) for every place whitespace may go. What is left is shared by the free strings at one character per
    token, which is the most a token can cost in ASCII text: a model writing plain ASCII cannot run a call past the
    budget through its strings (escapes and non-ASCII characters can take more tokens per character).
    """
    if max_tokens is None:
        return max_string_length
    fixed, spaces, strings = _shape(option)
    if not strings:
        return max_string_length
    reserve = -(-fixed // 2) + 2 * spaces
    cap = max(MIN_STRING_CAP, (max_tokens - reserve) // strings)
    return cap if max_string_length is None else min(cap, max_string_length)


Shape = tuple[int, int, int]
"""(fixed characters, whitespace slots, free strings) of a value written as compact JSON with empty free strings."""


def _shape(schema: Any) -> Shape:
    """The largest :data:`Shape` a normalized schema admits, counted the way the GBNF lays it out: an object of n
    keys has 4n whitespace slots (after "{", around each ":", after each value), an array of k items 2k. Arrays
    count ``maxItems`` items if declared, else one (an unbounded array cannot be budgeted). A string with a
    ``maxLength`` of its own counts as that many fixed characters; one with ``enum`` or ``const`` as its longest
    value."""
    if not isinstance(schema, dict) or not schema:
        return 2, 0, 1  # any JSON value: unbounded, counted as one free string
    if "const" in schema:
        return len(json.dumps(schema["const"], ensure_ascii=False)), 0, 0
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return max(len(json.dumps(v, ensure_ascii=False)) for v in schema["enum"]), 0, 0
    options = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(options, list) and options:
        base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        return _widest(_shape({**base, **o} if isinstance(o, dict) else o) for o in options)
    kind = schema.get("type")
    if isinstance(kind, list) and kind:
        return _widest(_shape({**schema, "type": k}) for k in kind)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    if kind == "object":
        properties = schema.get("properties")
        if isinstance(properties, dict) and properties:
            fixed, spaces, strings = 1 + len(properties), 4 * len(properties), 0  # braces and commas
            for key, sub in properties.items():
                f, w, n = _shape(sub)
                fixed, spaces, strings = (
                    fixed + len(json.dumps(key, ensure_ascii=False)) + 1 + f,
                    spaces + w,
                    strings + n,
                )
            return fixed, spaces, strings
        extra = schema.get("additionalProperties", True)
        if extra is False:
            return 2, 1, 0
        f, w, n = _shape(extra if isinstance(extra, dict) else {})
        return 5 + f, 4 + w, 1 + n  # one pair: a free key, its colon, its value
    if kind == "array":
        high, low = schema.get("maxItems"), schema.get("minItems", 0)
        count = high if _is_int(high) else max(1, low if _is_int(low) else 0)
        if count == 0:
            return 2, 1, 0
        f, w, n = _shape(schema.get("items", {}))
        return 2 + (count - 1) + count * f, 2 * count + count * w, count * n
    if kind == "string":
        high = schema.get("maxLength")
        return (2 + high, 0, 0) if _is_int(high) else (2, 0, 1)
    if kind == "integer":
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if _is_number(minimum) and minimum >= 0:
            return (len(str(int(maximum))) if _is_number(maximum) else 16), 0, 0
        return 17, 0, 0  # a minus sign and sixteen digits
    if kind == "number":
        return 39, 0, 0  # sign, 16 digits, "." and 16 more, "e+999"
    if kind == "boolean":
        return 5, 0, 0
    if kind == "null":
        return 4, 0, 0
    return 2, 0, 1


def _widest(shapes: Any) -> Shape:
    fixed, spaces, strings = zip(*shapes, strict=True)
    return max(fixed), max(spaces), max(strings)


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
