"""Lenient reading of the model's JSON, limited to the kinds of repair MemGPT's ``local_llm/json_parser.py`` tries."""

import json
import re

from .errors import LLMJSONParsingError

# Closers a model that stopped early may have left off (MemGPT appends the same ones).
_MISSING_TAILS = ("", "}", "}}", '"}}')


def read_json_leniently(text):
    """Return the JSON value the model wrote, or raise :class:`LLMJSONParsingError`.

    Tried in turn, on the text as is and with ``\\_`` turned into ``_``: the text itself, then with missing closing
    braces (and a closing quote) added, also after trimming whitespace and a trailing comma; finally the first
    object that starts at a ``{``, ignoring what follows it; last, a send_message call picked out field by field
    (non-ASCII dropped, as MemGPT does), e.g. after a primed prefix the model repeated. Control characters inside
    strings are accepted.
    """
    for variant in (text, text.replace("\\_", "_")):
        for base in (variant, variant.strip().rstrip(",")):
            for tail in _MISSING_TAILS:
                try:
                    return json.loads(base + tail, strict=False)
                except json.JSONDecodeError:
                    pass
        start = variant.find("{")
        if start >= 0:
            try:
                return json.JSONDecoder(strict=False).raw_decode(variant + "}}", start)[0]
            except json.JSONDecodeError:
                pass
    ascii_only = re.sub(r"[^\x00-\x7F]+", "", text)
    fields = {key: re.search(rf'"{key}":\s*"([^"]+)"', ascii_only) for key in ("function", "inner_thoughts", "message")}
    if all(fields.values()) and fields["function"].group(1) == "send_message":
        return {
            "function": "send_message",
            "params": {"inner_thoughts": fields["inner_thoughts"].group(1), "message": fields["message"].group(1)},
        }
    raise LLMJSONParsingError(f"No JSON could be read from the model output:\n{text}")


def decode_or_fail(raw_llm_output):
    """Like MemGPT's wrappers, report output that is not JSON at all as a bare ``Exception``."""
    try:
        return read_json_leniently(raw_llm_output)
    except Exception as err:
        raise Exception(f"The model output is not decodable JSON: {err}") from err  # bare, as MemGPT does
