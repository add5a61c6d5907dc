"""Output repair: a local model's raw text read as one call to an offered function, or a ParseError saying why not.

The order of work, cheapest first:

1. Strict JSON at the start of each candidate object (C speed; most outputs stop here).
2. A small tolerant scanner finds where the candidate object ends, or, when the text runs out first, the last point
   where everything written so far was complete. A cut-off object is closed there, so a half-written argument is
   dropped rather than guessed at.
3. ``json_repair`` reads what strict JSON cannot (single quotes, Python literals, comments, unquoted keys, unescaped
   quotes, trailing commas), on a span capped at ``MAX_REPAIR_CHARS``.
4. Schema-aware steps json_repair cannot know: the function name is matched only against the offered functions,
   ``params`` may be spelled ``parameters``/``arguments`` or be a JSON string, and inner thoughts may sit outside
   ``params``.
5. :func:`check_call`: every required argument must be there, and every argument must have its declared JSON-schema
   type (after safe coercions such as ``"3"`` to 3 for an integer), enum value and nullability.

A wrong call is worse than an error: nothing here guesses between two functions, fills in a missing argument, or
returns a call the schema rejects. ``parse_function_call`` either returns a whole, checked call or raises:

- ``TruncatedOutputError`` (a ``ParseError``) when the text ended inside the call: a string, number, list or object
  was still being written, or a comma, key or colon promised more. Whatever came before the cut is dropped, not
  guessed at, even when every required argument happens to be complete; the error carries the function ``name``
  (None if the cut came before it), the complete ``arguments`` and the ``inner_thoughts`` so a caller can retry with
  more room or continue. A text that stops after a whole value, with only closing brackets missing, is not a cut:
  that call is returned (if it passes the check).
- ``ParseError`` for everything else (no call, an unknown or ambiguous name, a missing or mistyped argument), with
  the reason and the raw text.

The parser keeps no state between calls: everything it knows comes from its arguments.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from memgpt_core.errors import ParseError, TruncatedOutputError

if TYPE_CHECKING:
    from memgpt_core.models import FunctionCall

INNER_THOUGHTS = "inner_thoughts"
PARAMS_KEYS = ("params", "parameters", "arguments", "args")
NAME_KEYS = ("function", "name")

MAX_SCAN_CHARS = 64 * 1024
"""How far the tolerant scanner follows one candidate object. A real call is a few KB; this bounds the time."""
MAX_REPAIR_CHARS = 16 * 1024
"""The longest span handed to json_repair, whose time grows faster than linearly on some broken inputs."""
MAX_DEPTH = 48
"""Nesting deeper than this is not a function call; refusing it early keeps json_repair out of deep recursion."""
MAX_CANDIDATES = 4

_DECODER = json.JSONDecoder(strict=False)  # strict=False: raw line breaks inside strings are read as written
# A call object usually opens with its name key; these are tried first, then the first brace of all.
_CALL_START = re.compile(r"""\{\s*["']?(?:function|name|function_call)["']?\s*:""")
_BARE_CALL_KEY = re.compile(r"""["']function["']\s*:""")
# Tokens that end a model's turn in common formats. Text from one of them on is a stop-sequence leftover.
_TURN_END = re.compile(r"<\|im_end\|>|<\|im_start\|>|<\|endoftext\|>|<\|eot_id\|>|<\|end\|>|</s>|\nUSER:|\nASSISTANT:")
_TOKEN = re.compile(r"""[ \t\r\n]*(?:([{}\[\],:])|(["'])|(//|\#)|(/\*)|(```)|([^\s{}\[\],:"'/\#`]+)|(.))""", re.S)
_STRING_STOP = {'"': re.compile(r'[\\"]'), "'": re.compile(r"[\\']")}
_LINE_END = re.compile(r"\n")
# What may follow a string's closing quote. A comment counts only after a space, so "#tags" inside prose does not.
_AFTER_CLOSING_QUOTE = re.compile(r"[ \t\r\n]*(?:([,}\]:])|\Z)|[ \t\r\n]+(?://|/\*|\#)")
_COMMENT_OR_END = r"(?://|/\*|\#|\Z)"
# After "text", : the next key, the end of the object, a comment, or the start of a key the token limit cut.
_NEXT_KEY = re.compile(
    r"""[ \t\r\n]*(?:["'][^"'\n]{1,80}["'][ \t]*:|[A-Za-z_][\w-]{0,80}[ \t]*:|[}\]]|"""
    + _COMMENT_OR_END
    + r"""|["'][^"'\n]{0,80}(?:["'][ \t]*)?\Z|[A-Za-z_][\w-]{0,80}[ \t]*\Z)"""
)
_QUOTED_KEY = re.compile(r"""[ \t\r\n]*["'][^"'\n]{1,80}["'][ \t]*:""")
_NEXT_VALUE = re.compile(r"""[ \t\r\n]*(?:["'{\[\]]|-?\d|true|false|null|True|False|None|""" + _COMMENT_OR_END + ")")
# An odd run of backslashes before the quote means the quote is escaped already.
_ESCAPED_SINGLE_QUOTE = re.compile(r"(?<!\\)((?:\\\\)*)\\'")
_BARE_DOUBLE_QUOTE = re.compile(r'(?<!\\)((?:\\\\)*)"')
# The primed opening written a second time by the model: "function": "function": NAME.
_REPEATED_NAME_KEY = re.compile(
    r"""(["']function["'][ \t\r\n]*:[ \t\r\n]*)(?:["']function["'][ \t\r\n]*:[ \t\r\n]*)+"""
)
# Inside a string, a quote after one of these may open a quotation ("called "Dune"), so it does not end the string.
_BEFORE_QUOTATION = frozenset(" \t\r\n([{")
_BLANK_TO_END = re.compile(r"[ \t\r\n]*\Z")
_COMPLETE_WORDS = frozenset({"true", "false", "null", "True", "False", "None"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_TRUE_WORDS = {"true": True, "True": True, "false": False, "False": False}


def parse_function_call(
    raw: str, functions: list[dict[str, Any]], *, inner_thoughts_in_params: bool = True
) -> FunctionCall:
    """Read ``raw`` as ``{"function": NAME, "params": {"inner_thoughts": ..., ...}}``, repairing what is safe.

    ``functions`` are the OpenAI-style schemas the prompt offered; the name must be one of them exactly (after
    undoing markdown escapes), and the arguments must pass :func:`check_call`. With no functions, any name and any
    arguments are accepted. Raises ``TruncatedOutputError`` when the text ends inside the call (see the module
    docstring for the rule), ``ParseError`` for every other reason the text is not a whole, valid call.
    """
    from memgpt_core.models import FunctionCall

    if not isinstance(raw, str):
        raise ParseError(f"expected the model's text, got {type(raw).__name__}", str(raw))
    text = _unescape_underscores(raw) if "\\_" in raw else raw
    text = _REPEATED_NAME_KEY.sub(r"\1", text)
    if not text.strip():
        raise ParseError("the model returned no text", raw, fix=_FIX_EMPTY)
    obj, start, ending = _find_call_object(text, raw)
    schemas = _schemas_by_name(functions)
    name, arguments, thoughts = _read_call(obj, schemas, raw, ending)
    if thoughts is None and not inner_thoughts_in_params:
        before = text[:start].strip()
        thoughts = before or None
    schema = schemas.get(name)
    if ending == _CUT or (ending == _UNCLOSED and (_missing(arguments, schema) or (not schemas and not arguments))):
        # Cut inside a value; or the text simply stopped, brackets still open, before a required argument came (or,
        # with no schema to say what is required, before any argument at all).
        raise _cut_off(name, arguments, thoughts, schema, raw)
    arguments = check_call(name, arguments, functions, raw)
    return FunctionCall(name=name, arguments=arguments, inner_thoughts=thoughts)


# How the call object ended: closed (or the model ended its turn: a stop token, a fence, prose after a whole value),
# unclosed (the text stopped after a whole value, with only closing brackets missing), or cut (inside a value).
_CLOSED, _UNCLOSED, _CUT = "closed", "unclosed", "cut"

_FIX_EMPTY = "check the backend's stop sequences and max tokens; a grammar wrapper (-grammar) forces a call"
_FIX_SHAPE = 'the model should answer with {"function": NAME, "params": {...}}; a -grammar wrapper enforces it'
_FIX_CUT = "raise the max tokens (n_predict) so the whole call fits, or continue the answer from the complete part"
_FIX_ARGUMENTS = "the model must write every required argument with its declared type; a -grammar wrapper enforces it"


def _cut_off(
    name: str, arguments: dict[str, Any], thoughts: str | None, schema: dict[str, Any] | None, raw: str
) -> TruncatedOutputError:
    """The error for a call the text ended inside, naming what was still to come when that is known."""
    complete = dict(arguments)
    _coerce(complete, _properties(schema))
    missing = _missing(complete, schema)
    if missing:
        reason = f"the call to {name} was cut off before its required argument{'s' if len(missing) > 1 else ''} "
        reason += ", ".join(missing)
    else:
        reason = f"the text ended inside the call to {name}"
        if complete:
            reason += f", after its complete argument{'s' if len(complete) > 1 else ''} {', '.join(complete)}"
    return TruncatedOutputError(
        reason,
        raw,
        name=name,
        arguments=complete,
        inner_thoughts=thoughts,
        fix=_FIX_CUT,
    )


def _unescape_underscores(text: str) -> str:
    """Undo the markdown habit ``send\\_message``: ``\\_`` is never a JSON escape.

    Backslashes pair up from the left as a JSON reader pairs them, so splitting on doubled ones leaves only the
    backslashes that escape the next character; ``\\\\_`` (a literal backslash, then ``_``) is kept.
    """
    return "\\\\".join(part.replace("\\_", "_") for part in text.split("\\\\"))


# -- finding and reading the JSON object ---------------------------------------------------------------------------


def _missing(arguments: dict[str, Any], schema: dict[str, Any] | None) -> list[str]:
    """The required arguments not in ``arguments`` (``inner_thoughts`` is never required of the call)."""
    return [key for key in _required(schema) if key not in arguments and key != INNER_THOUGHTS]


def _find_call_object(text: str, raw: str) -> tuple[dict[str, Any], int, str]:
    """The first candidate object that reads as a dict with a function name: (object, where it starts, ending)."""
    starts: list[int] = []
    for match in _CALL_START.finditer(text):
        starts.append(match.start())
        if len(starts) >= MAX_CANDIDATES - 1:
            break
    first = text.find("{")
    if first >= 0 and first not in starts:
        starts.append(first)
    starts.sort()
    synthetic = False
    bare = _BARE_CALL_KEY.search(text, 0, starts[0] if starts else len(text))
    if bare is not None:
        # "function": ... with no opening brace before it (dropped, or the primed opening left out): supply one.
        at = bare.start()
        text = text[:at] + "{" + text[at:]
        starts = [at, *(s + 1 for s in starts)]
        synthetic = True
    if not starts:
        raise ParseError("the output contains no JSON object", raw, fix=_FIX_SHAPE)

    reasons: list[str] = []
    fallback: tuple[dict[str, Any], int, str] | None = None
    for start in starts[:MAX_CANDIDATES]:
        try:
            obj, ending = _read_object(text, start)
        except _Unreadable as exc:
            reasons.append(str(exc))
            continue
        if _has_name(obj):
            return obj, start, ending
        if fallback is None:
            fallback = (obj, start, ending)
    if fallback is not None:
        return fallback  # a readable object without a name: _read_call explains what is missing
    reason = reasons[0] if reasons else "no JSON object could be read"
    if synthetic:
        reason += " (the opening brace was missing too)"
    raise ParseError(reason, raw, fix=_FIX_SHAPE)


class _Unreadable(Exception):
    """One candidate could not be read; the message is the reason shown if no other candidate can be."""


def _has_name(obj: dict[str, Any]) -> bool:
    inner = obj.get("function_call")
    if isinstance(inner, dict):
        obj = inner
    return any(key in obj for key in NAME_KEYS)


def _read_object(text: str, start: int) -> tuple[dict[str, Any], str]:
    """Read the object starting at ``text[start] == '{'``: (object, how it ended: _CLOSED, _UNCLOSED or _CUT)."""
    try:  # the fast path: valid JSON, whatever follows it
        obj, _ = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        pass
    else:
        if isinstance(obj, dict):
            return obj, _CLOSED
    end_mark = _TURN_END.search(text, start)
    limit = end_mark.start() if end_mark else len(text)
    scan = _scan(text, start, min(limit, start + MAX_SCAN_CHARS))
    if scan.closed_at is not None:
        span, ending = _requoted(text, start, scan.closed_at, scan.odd_strings), _CLOSED
    else:
        if limit - start > MAX_SCAN_CHARS:
            raise _Unreadable(f"the call object does not end within {MAX_SCAN_CHARS // 1024} KB")
        span = _requoted(text, start, scan.safe_pos, scan.odd_strings) + scan.safe_closers
        if not scan.complete_at_end:
            ending = _CUT
        elif scan.ran_out and limit == len(text):
            ending = _UNCLOSED
        else:
            ending = _CLOSED  # the model ended the object its own way: a stop token, a fence, prose after a value
    obj = _loads(span)
    if not isinstance(obj, dict):
        raise _Unreadable("the output's JSON is not an object")
    if scan.closed_at is None and _drop_open_argument(obj, len(scan.safe_closers)):
        ending = _CUT  # an argument's list or object was never closed: it may have been meant to go on
    return obj, ending


def _loads(span: str) -> Any:
    try:
        return _DECODER.decode(span)
    except (ValueError, RecursionError):
        pass
    if len(span) > MAX_REPAIR_CHARS:
        raise _Unreadable(
            f"the call is {len(span) // 1024} KB of broken JSON; repair stops at {MAX_REPAIR_CHARS // 1024} KB"
        )
    import json_repair

    try:
        return json_repair.loads(span)
    except (ValueError, RecursionError, IndexError, TypeError, KeyError) as exc:  # json_repair's own failures
        raise _Unreadable(f"the JSON could not be repaired ({type(exc).__name__})") from exc


class _Scan:
    """What the tolerant scanner found: where the object closed, or the last complete point before the text ran out."""

    __slots__ = ("closed_at", "complete_at_end", "odd_strings", "ran_out", "safe_closers", "safe_pos")

    def __init__(self) -> None:
        self.closed_at: int | None = None
        self.odd_strings: list[tuple[int, int]] = []
        """Strings strict JSON cannot read as written: single-quoted, or with bare quotes inside."""
        self.safe_pos = 0
        self.safe_closers = ""
        self.complete_at_end = False
        self.ran_out = False
        """The scan stopped because the text did, not at a fence or at prose after a string."""


def _scan(text: str, start: int, end: int) -> _Scan:
    """Follow the object from ``text[start]`` ('{') with a tolerant tokenizer, in linear time.

    Strings may use either quote; a quote inside a string ends it only where the text after it reads like the next
    member (the heuristic json_repair uses too). ``safe_pos``/``safe_closers`` record the last point where every
    value written so far was complete, and the brackets that close the object from there.
    """
    result = _Scan()
    # One entry per open container: [closer, phase]; phase is "key", "colon", "value" or "comma".
    stack: list[list[str]] = [["}", "key"]]
    result.safe_pos, result.safe_closers = start + 1, "}"
    pos = start + 1
    pending = False  # something after the last complete value: a comma, a key, a colon
    while pos < end:
        m = _TOKEN.match(text, pos, end)
        if m is None or m.end() == pos:  # only whitespace is left
            result.ran_out = True
            break
        bracket, quote, line_comment, block_comment, fence, word, _other = m.groups()
        pos = m.end()
        top = stack[-1]
        if bracket:
            if bracket in "{[":
                if len(stack) >= MAX_DEPTH:
                    raise _Unreadable(f"the JSON nests deeper than {MAX_DEPTH} levels")
                stack.append(["}" if bracket == "{" else "]", "key" if bracket == "{" else "value"])
            elif bracket in "}]":
                stack.pop()
                if not stack:
                    result.closed_at = pos
                    return result
                stack[-1][1] = "comma"
            elif bracket == ",":
                top[1] = "key" if top[0] == "}" else "value"
                pending = True
                continue
            else:  # ":"
                top[1] = "value"
                pending = True
                continue
        elif quote:
            is_key = top[0] == "}" and top[1] in ("key", "comma")
            opened = pos - 1
            pos, closed, odd, first_close = _skip_string(text, pos, end, quote, is_key, top[0])
            if closed and (odd or quote == "'"):
                result.odd_strings.append((opened, pos))
            if not closed:
                if first_close is None:
                    pending = True  # the text ended inside the string: it was cut off
                    break
                # No quote ended the string where structure went on, yet one could have: the string ended there and
                # the model wrote something else than JSON after it. Keep the value, drop the rest.
                result.odd_strings.append((opened, first_close))
                top[1] = "comma"
                result.safe_pos = first_close
                result.safe_closers = "".join(entry[0] for entry in reversed(stack))
                pending = False
                break
            if is_key:
                top[1] = "colon"
                pending = True
                continue
            top[1] = "comma"
        elif word:
            if top[0] == "}" and top[1] in ("key", "comma"):
                top[1] = "colon"  # an unquoted key
                pending = True
                continue
            if pos >= end and word not in _COMPLETE_WORDS:
                pending = True
                break  # a number or literal still being written when the text ran out
            top[1] = "comma"
        elif line_comment:
            nl = _LINE_END.search(text, pos, end)
            pos = nl.end() if nl else end
            continue
        elif block_comment:
            close = text.find("*/", pos, end)
            pos = close + 2 if close >= 0 else end
            continue
        elif fence:
            break  # a closing markdown fence: the object ends with the text inside it
        else:
            continue  # a stray character outside any string; json_repair decides what it means
        # Here a value (or a container) was completed or opened: everything up to pos is whole.
        result.safe_pos = pos
        result.safe_closers = "".join(entry[0] for entry in reversed(stack))
        pending = False
    else:
        result.ran_out = True
    result.complete_at_end = not pending
    return result


def _skip_string(
    text: str, pos: int, end: int, quote: str, is_key: bool, container: str
) -> tuple[int, bool, bool, int | None]:
    """From just inside an opening quote: the position after the closing one, whether it closed before ``end``,
    whether a bare quote inside had to be read as text, and, for a string that never closed, the position after the
    first bare quote that could have closed it (None if none could).

    A bare quote that could close is one not followed by a letter or digit (so not the apostrophe of "it's") and not
    part of a quotation inside the text: a quote after a space or an opening bracket, before a visible character or
    the end of the text, opens one (``called "Dune``), and the next bare quote closes it. So a string cut off inside
    ``"She said "hi", then le`` has no such quote, while ``"Hello there!" and then the model rambled`` ends after
    ``there!``. For the same reason a quote at the very end of the text ends the string only if it neither opens nor
    closes a quotation: ``"called "Dune"`` and ``"called "`` were cut off, ``"Hello there."`` lost its brackets.
    """
    stop = _STRING_STOP[quote]
    inside = pos
    odd = False
    first_close: int | None = None
    quotation = False  # a quotation inside the text is open
    while True:
        m = stop.search(text, pos, end)
        if m is None:
            return end, False, odd, first_close
        at = m.start()
        if text[at] == "\\":
            pos = at + 2
            if pos > end:
                return end, False, odd, first_close
            continue
        pos = at + 1
        if is_key:
            return pos, True, odd, None
        after = text[pos] if pos < end else ""
        at_end = not after or (after.isspace() and _BLANK_TO_END.match(text, pos, end) is not None)
        opens = at > inside and text[at - 1] in _BEFORE_QUOTATION and (at_end or not after.isspace())
        if at_end:
            # The text stops after this quote. It ends the string (the closing brackets are what is missing) unless
            # it opens a quotation or closes one: then the text stopped inside the string.
            if not (quotation or opens):
                return pos, True, odd, None
        elif _closes_string(text, pos, end, container):
            return pos, True, odd, None
        odd = True
        if quotation:
            quotation = False
        elif opens:
            quotation = True
        elif first_close is None and not (after.isalnum() or after == "_"):
            first_close = pos


def _requoted(text: str, start: int, stop: int, odd_strings: list[tuple[int, int]]) -> str:
    """``text[start:stop]`` with each odd string the scanner delimited rewritten as a JSON string.

    The scanner has already decided where these strings end; writing them out as JSON lets strict JSON read the
    rest, which is far faster than json_repair looking for the end of each string again.
    """
    if not odd_strings:
        return text[start:stop]
    parts: list[str] = []
    at = start
    for opened, closed in odd_strings:
        if closed > stop:
            break
        parts.append(text[at:opened])
        body = text[opened + 1 : closed - 1]
        if text[opened] == "'":
            body = _ESCAPED_SINGLE_QUOTE.sub(r"\1'", body)
        parts.append('"' + _BARE_DOUBLE_QUOTE.sub(r'\1\\"', body) + '"')
        at = closed
    parts.append(text[at:stop])
    return "".join(parts)


def _closes_string(text: str, pos: int, end: int, container: str) -> bool:
    """Does the quote just before ``pos`` end its string? Yes if what follows reads like the structure going on."""
    after = _AFTER_CLOSING_QUOTE.match(text, pos, end)
    if after is not None:
        if after.group(1) != ",":  # a bracket, a colon, a comment or the end
            return True
        follow = _NEXT_KEY if container == "}" else _NEXT_VALUE
        return follow.match(text, after.end(), end) is not None
    # A missing comma: "a": "x" "b": ... reads as two members.
    return container == "}" and _QUOTED_KEY.match(text, pos, end) is not None


def _drop_open_argument(obj: dict[str, Any], open_depth: int) -> bool:
    """Drop the argument whose value was still open (a list or object half written) when the text ran out.

    The containers open at the cut are the chain of last members from the root. A member of the root or of the
    params object is whole unless the chain goes deeper through it.
    """
    node: Any = obj
    depth = 1
    frames: tuple[str, ...] = (*PARAMS_KEYS, "function", "function_call")  # keys that hold the call, not a value
    while depth < open_depth and isinstance(node, dict) and node:
        key = next(reversed(node))
        child = node[key]
        if not isinstance(child, (dict, list)):
            return False
        if key not in frames:
            del node[key]  # an argument value that was cut off inside
            return True
        frames = PARAMS_KEYS if key in ("function", "function_call") else ()
        node, depth = child, depth + 1
    return False


# -- from the object to a call -------------------------------------------------------------------------------------


def _schemas_by_name(functions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for raw in functions or ():
        fn = raw.get("function", raw) if isinstance(raw, dict) and raw.get("type") == "function" else raw
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            schemas[fn["name"]] = fn
    return schemas


def _read_call(
    obj: dict[str, Any], schemas: dict[str, dict[str, Any]], raw: str, ending: str
) -> tuple[str, dict[str, Any], str | None]:
    if isinstance(obj.get("function_call"), dict):  # OpenAI's own shape
        obj = {**obj["function_call"], **{k: v for k, v in obj.items() if k != "function_call"}}
    frame = obj
    name_key = next((key for key in NAME_KEYS if key in obj), None)
    name_value = obj.get(name_key) if name_key else None
    if isinstance(name_value, dict):
        # {"function": {"name": ..., "arguments": ...}}, or a primed opening the model wrote a second time.
        frame = name_value
        inner_key = next((key for key in NAME_KEYS if key in frame), None)
        name_value = frame.get(inner_key) if inner_key else None
    if ending != _CLOSED and name_value is None:
        raise _cut_before_name(obj, frame, raw)
    if name_key is None:
        raise ParseError('the output has no "function" name', raw, fix=_FIX_SHAPE)
    name = _normalise_name(name_value)
    if not name:
        raise ParseError(f"the function name is not a name: {json.dumps(name_value, default=str)[:80]}", raw)
    schema = _match_name(name, schemas, raw)

    params = _params_of(frame, raw)
    if params is None and frame is not obj:
        params = _params_of(obj, raw)
    arguments = dict(params or {})

    properties = _properties(schema)
    reserved = {name_key, *PARAMS_KEYS, INNER_THOUGHTS, "function_call"}
    sources = [obj] if frame is obj else [frame, obj]
    for source in sources:
        for key, value in source.items():
            if key in reserved or key in arguments or (source is not obj and key in NAME_KEYS):
                continue
            # A parameter written beside params instead of inside it; without a schema only when params is absent.
            if (schema is not None and key in properties) or (schema is None and params is None):
                arguments[key] = value

    thoughts: Any = None
    if INNER_THOUGHTS in arguments and INNER_THOUGHTS not in properties:
        thoughts = arguments.pop(INNER_THOUGHTS)
    for source in (frame, obj):
        if thoughts is None and INNER_THOUGHTS in source:
            thoughts = source[INNER_THOUGHTS]
    if thoughts is not None and not isinstance(thoughts, str):
        thoughts = json.dumps(thoughts, ensure_ascii=False)
    return name, arguments, thoughts


def _cut_before_name(obj: dict[str, Any], frame: dict[str, Any], raw: str) -> TruncatedOutputError:
    """The text ended before the function name was complete: keep whatever arguments and thoughts came first."""
    arguments: dict[str, Any] = {}
    thoughts: Any = None
    for source in (frame, obj):
        params = next((source[k] for k in PARAMS_KEYS if k in source), None)
        if isinstance(params, dict) and not arguments:
            arguments = {k: v for k, v in params.items() if k != INNER_THOUGHTS}
            thoughts = params.get(INNER_THOUGHTS)
        if thoughts is None:
            thoughts = source.get(INNER_THOUGHTS)
    return TruncatedOutputError(
        "the output was cut off before the function name",
        raw,
        name=None,
        arguments=arguments,
        inner_thoughts=thoughts if isinstance(thoughts, str) else None,
        fix=_FIX_CUT,
    )


def _normalise_name(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    name = value.strip().strip("`'\"").strip().replace("\\_", "_")
    if name.endswith("()"):
        name = name[:-2]
    return name


def _match_name(name: str, schemas: dict[str, dict[str, Any]], raw: str) -> dict[str, Any] | None:
    if not schemas:
        return None  # MemGPT-style callers that offer no schemas take any name
    schema = schemas.get(name)
    if schema is not None:
        return schema
    offered = ", ".join(schemas)
    lowered = name.lower()
    near = [known for known in schemas if lowered in known.lower() or known.lower() in lowered]
    if len(near) > 1:
        reason = (
            f"the model called {name!r}, which could mean {' or '.join(near)}; refusing to guess (offered: {offered})"
        )
    else:
        reason = f"the model called {name!r}, which is not one of the offered functions ({offered})"
    raise ParseError(reason, raw, fix="the model must call an offered function; a -grammar wrapper enforces it")


def _params_of(frame: dict[str, Any], raw: str) -> dict[str, Any] | None:
    key = next((k for k in PARAMS_KEYS if k in frame), None)
    if key is None:
        return None
    value = frame[key]
    if value is None or value == "":
        return {}
    if isinstance(value, str):  # params written as a JSON string
        try:
            value = _loads(value.strip())
        except _Unreadable as exc:
            raise ParseError(f'"{key}" is a string that does not read as JSON: {exc}', raw, fix=_FIX_SHAPE) from exc
    if not isinstance(value, dict):
        raise ParseError(f'"{key}" is not an object of arguments: {json.dumps(value, default=str)[:80]}', raw)
    return value


def _properties(schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {}
    parameters = schema.get("parameters") or {}
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    return properties if isinstance(properties, dict) else {}


def _required(schema: dict[str, Any] | None) -> list[str]:
    parameters = (schema.get("parameters") or {}) if schema else {}
    required = parameters.get("required") if isinstance(parameters, dict) else None
    return [key for key in required or () if isinstance(key, str)]


# -- checking a call against its function's schema -----------------------------------------------------------------


def check_call(name: str, arguments: dict[str, Any], functions: list[dict[str, Any]], raw: str) -> dict[str, Any]:
    """The arguments of a call to ``name``, coerced and checked against that function's schema in ``functions``.

    ``functions`` are OpenAI-style schemas, bare or as ``{"type": "function", "function": {...}}``. With none, any
    name and any arguments pass. Otherwise ``name`` must be one of them, every required argument must be present
    (``inner_thoughts`` is never required here), and every argument the schema declares must have its declared
    type, enum value or const, checked into arrays and objects; ``null`` passes only where the schema allows it
    (``nullable: true``, ``"null"`` among the types, or a ``null`` branch of ``anyOf``/``oneOf``). Before the check,
    unambiguous strings are read as the declared type (``"3"`` for an integer, ``"true"`` for a boolean) and an
    integral float such as ``3.0`` as an integer. Arguments the schema does not declare are kept as they are.

    Returns a new dict; raises ``ParseError(reason, raw, fix=...)`` naming the function and the arguments at fault.
    """
    if not isinstance(name, str) or not name:
        raise ParseError("the call has no function name", raw, fix=_FIX_SHAPE)
    if not isinstance(arguments, dict):
        raise ParseError(f"the arguments of {name} are not an object", raw, fix=_FIX_SHAPE)
    checked = dict(arguments)
    schema = _match_name(name, _schemas_by_name(functions), raw)
    if schema is None:
        return checked
    properties = _properties(schema)
    _coerce(checked, properties)
    problems: list[str] = []
    missing = [key for key in _required(schema) if key not in checked and key != INNER_THOUGHTS]
    if missing:
        problems.append(f"left out its required argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    wrong: list[str] = []
    for key, value in checked.items():
        declared = properties.get(key)
        found = _mismatch(value, declared, 0) if isinstance(declared, dict) else None
        if found is not None:
            wrong.append(f"{key}{found[0]} {found[1]}")
    if wrong:
        problems.append(f"has {'arguments' if len(wrong) > 1 else 'an argument'} of the wrong type: {'; '.join(wrong)}")
    if problems:
        raise ParseError(f"the call to {name} {', and '.join(problems)}", raw, fix=_FIX_ARGUMENTS)
    return checked


_KIND_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def _kinds(schema: dict[str, Any]) -> list[str]:
    """The JSON types a schema names in ``type`` (a name or a list of names); empty when it names none."""
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return [kinds]
    return [kind for kind in kinds if isinstance(kind, str)] if isinstance(kinds, list) else []


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if isinstance(value, bool):
        return False  # a bool is an int in Python, never a number in JSON
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    return kind not in _KIND_NAMES  # a type name JSON Schema does not have constrains nothing here


def _same(value: Any, allowed: Any) -> bool:
    """JSON equality: true is not 1, though Python says it is."""
    if isinstance(value, bool) or isinstance(allowed, bool):
        return type(value) is type(allowed) and value == allowed
    return bool(value == allowed)


def _show(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _mismatch(value: Any, schema: Any, depth: int) -> tuple[str, str] | None:
    """Where inside ``value`` it breaks ``schema`` and how (``("[2]", 'is 5, not a string')``), or None if it fits.

    The structural keywords are checked (type, enum, const, anyOf, oneOf, allOf, items, properties, required);
    bounds such as minLength or maximum are not.
    """
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    if value is None and schema.get("nullable") is True:
        return None
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list) and branches and all(_mismatch(value, b, depth + 1) for b in branches):
            return "", f"is {_show(value)}, which fits none of the forms its schema allows"
    branches = schema.get("allOf")
    for branch in branches if isinstance(branches, list) else ():
        found = _mismatch(value, branch, depth + 1)
        if found is not None:
            return found
    if "const" in schema and not _same(value, schema["const"]):
        return "", f"is {_show(value)}, not {_show(schema['const'])}"
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_same(value, allowed) for allowed in enum):
        listed = ", ".join(_show(allowed) for allowed in enum[:8]) + (", ..." if len(enum) > 8 else "")
        return "", f"is {_show(value)}, not one of {listed}"
    kinds = _kinds(schema)
    if kinds and not any(_is_kind(value, kind) for kind in kinds):
        return "", f"is {_show(value)}, not {' or '.join(_KIND_NAMES.get(kind, kind) for kind in kinds)}"
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict):
        for index, item in enumerate(value):
            found = _mismatch(item, items, depth + 1)
            if found is not None:
                return f"[{index}]{found[0]}", found[1]
    if isinstance(value, dict):
        required = schema.get("required")
        for key in required if isinstance(required, list) else ():
            if isinstance(key, str) and key not in value:
                return f".{key}", "is missing, and it is required"
        properties = schema.get("properties")
        for key, declared in properties.items() if isinstance(properties, dict) else ():
            found = _mismatch(value[key], declared, depth + 1) if key in value else None
            if found is not None:
                return f".{key}{found[0]}", found[1]
    return None


def _coerce(arguments: dict[str, Any], properties: dict[str, Any]) -> None:
    """Fix the type of an argument where the reading is unambiguous: "true" for a boolean, "3" or 3.0 for an integer.

    A string is left alone when the schema allows a string, so "42" stays text where text is fine.
    """
    for key, value in arguments.items():
        declared = properties.get(key)
        if not isinstance(declared, dict):
            continue
        kinds = _kinds(declared)
        if isinstance(value, float) and "integer" in kinds and "number" not in kinds:
            if value.is_integer() and abs(value) < 2**53:
                arguments[key] = int(value)
            continue
        if not isinstance(value, str) or not kinds or "string" in kinds:
            continue
        text = value.strip()
        if "boolean" in kinds and text in _TRUE_WORDS:
            arguments[key] = _TRUE_WORDS[text]
        elif "integer" in kinds and re.fullmatch(r"-?\d{1,18}", text):
            arguments[key] = int(text)
        elif "number" in kinds and _NUMBER.fullmatch(text):
            arguments[key] = float(text) if any(c in text for c in ".eE") else int(text)
