"""Pieces the three wrappers share: the function listing, past calls as JSON, and turning the reply into a message."""

import json

from .errors import LLMJSONParsingError

INNER_THOUGHTS = "inner_thoughts"
_INNER_THOUGHTS_HELP = "your private inner monologue, never shown to the user."
_PREAMBLE = (
    "From the functions listed below, choose the one that best continues the conversation, "
    "and answer with a JSON object naming it and giving its parameters."
)


def function_section(functions, function_documentation=None, inner_thoughts=True):
    """The instructions plus the function listing (or the grammar's ``function_documentation`` when given)."""
    if function_documentation is not None:
        listing = function_documentation
    else:
        blocks = []
        for schema in functions:
            lines = [f"{schema['name']}:", f"  description: {schema.get('description', '')}", "  params:"]
            if inner_thoughts:
                lines.append(f"    {INNER_THOUGHTS}: {_INNER_THOUGHTS_HELP}")
            for param, spec in schema.get("parameters", {}).get("properties", {}).items():
                lines.append(f"    {param}: {spec.get('description', '')}")
            blocks.append("\n".join(lines))
        listing = "\n".join(blocks)
    return f"{_PREAMBLE}\nAvailable functions:\n{listing}"


def call_as_json(function_call, inner_thoughts, indent=2):
    """An earlier ``function_call`` ({"name", "arguments": JSON string}) as the JSON the model is asked to write."""
    params = {INNER_THOUGHTS: inner_thoughts, **json.loads(function_call["arguments"], strict=False)}
    return json.dumps({"function": function_call["name"], "params": params}, indent=indent, ensure_ascii=False)


def pretty_json_or_text(content, indent):
    try:
        return json.dumps(json.loads(content, strict=False), indent=indent, ensure_ascii=False)
    except (TypeError, ValueError):
        return content


def event_message_or_text(content):
    """MemGPT's user turns are JSON events; their ``message`` field, else the content unchanged."""
    try:
        return json.loads(content, strict=False)["message"]
    except (TypeError, ValueError, KeyError, IndexError):
        return content


def to_assistant_message(data, clean_function_args=True, unwrap_nested=True):
    """{"function", "params"} -> an assistant message. Required arguments are NOT checked (MemGPT doesn't)."""
    try:
        if unwrap_nested and isinstance(data["function"], dict):  # {"function": {"function": ..., "params": ...}}
            data = data["function"]
        name = data["function"]
        params = data["params"]
    except KeyError as err:
        raise LLMJSONParsingError(f"The model's JSON lacks the field {err}: {data}") from err
    thoughts = None
    if clean_function_args:
        params = dict(params) if params is not None else {}
        if name == "send_message":
            params.pop("request_heartbeat", None)
        thoughts = params.pop(INNER_THOUGHTS, None)
    return {
        "role": "assistant",
        "content": thoughts,
        "function_call": {"name": name, "arguments": json.dumps(params, ensure_ascii=False)},
    }
