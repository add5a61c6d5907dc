"""A community prompt wrapper for memgpt: Alpaca's instruction format, written as a plain MemGPT-style class."""

from __future__ import annotations

import json
from typing import Any

from memgpt_core import hookimpl
from memgpt_core.errors import ParseError


class AlpacaWrapper:
    """Alpaca's ``### Instruction`` / ``### Response`` layout; the model answers with one JSON function call.

    Deliberately not a subclass of anything in memgpt: this is how a wrapper written for MemGPT looks, plus a name.
    """

    name = "community-alpaca"
    stop_sequences = ("\n### Instruction:", "\n### Input:", "\n### Response:", "</s>")

    def __init__(self) -> None:
        self.function_names: list[str] = []

    def chat_completion_to_prompt(
        self, messages: list[dict[str, Any]], functions: list[dict[str, Any]], first_message: bool = False
    ) -> str:
        self.function_names = [f["name"] for f in functions]
        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        lines = ["### Instruction:", system, "", "You can call these functions:"]
        for function in functions:
            lines.append(f"- {function['name']}: {function.get('description', '')}")
            for param, spec in function.get("parameters", {}).get("properties", {}).items():
                lines.append(f"    {param} ({spec.get('type', 'any')}): {spec.get('description', '')}")
        lines += [
            "Reply with exactly one JSON object and nothing else:",
            '{"function": "<name>", "params": {"inner_thoughts": "<your private thoughts>", ...}}',
            "",
            "### Input:",
        ]
        for message in messages:
            if message["role"] == "user":
                lines.append(f"USER: {_event_text(message['content'])}")
            elif message["role"] == "assistant":
                lines.append(f"ASSISTANT: {_render_call(message)}")
            elif message["role"] in ("function", "tool"):
                lines.append(f"RESULT of {message.get('name', 'the function')}: {message['content']}")
        lines += ["", "### Response:"]
        return "\n".join(lines) + "\n"

    def output_to_chat_completion_response(self, raw_llm_output: str) -> dict[str, Any]:
        text = raw_llm_output.strip()
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end < start:
            raise ParseError("there is no JSON object in the output", raw_llm_output)
        try:
            data = json.loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ParseError(f"the JSON is invalid ({exc.msg} at character {exc.pos})", raw_llm_output) from None
        if not isinstance(data, dict) or not isinstance(data.get("function"), str):
            raise ParseError('the JSON has no "function" name', raw_llm_output)
        if self.function_names and data["function"] not in self.function_names:
            raise ParseError(f"the model called {data['function']!r}, which is not offered", raw_llm_output)
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise ParseError('"params" is not a JSON object', raw_llm_output)
        params = dict(params)
        thoughts = params.pop("inner_thoughts", None)
        return {
            "role": "assistant",
            "content": thoughts,
            "function_call": {"name": data["function"], "arguments": json.dumps(params, ensure_ascii=False)},
        }


def _event_text(content: str) -> str:
    """MemGPT sends user turns as JSON events; show the message text, and the event type when it is not a message."""
    try:
        event = json.loads(content)
    except (TypeError, json.JSONDecodeError):
        return content
    if isinstance(event, dict) and "message" in event:
        kind = event.get("type", "user_message")
        return event["message"] if kind == "user_message" else f"[{kind}] {event['message']}"
    return content


def _render_call(message: dict[str, Any]) -> str:
    call = message.get("function_call")
    if not call:
        return message.get("content") or ""
    params = {"inner_thoughts": message.get("content")}
    params.update(json.loads(call.get("arguments") or "{}"))
    return json.dumps({"function": call["name"], "params": params}, ensure_ascii=False)


@hookimpl
def register_wrappers(register):
    register(AlpacaWrapper)
