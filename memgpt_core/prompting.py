"""Prompt pieces every wrapper shares: the call-format instructions, the function list, and earlier calls written back.

Wrappers differ only in how they frame turns (Airoboros' ``USER:``/``ASSISTANT:``, ChatML's ``<|im_start|>``); what
the model is told about calling functions, and how its earlier calls look, is the same everywhere and lives here.
Kept free of heavy imports: wrapper plugins import this at start-up.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from memgpt_core.wrapper import FunctionSchema, Message, PromptWrapper

INNER_THOUGHTS = "inner_thoughts"

ANSWER_OPENING = '{"function":'
"""How a call starts, as :func:`call_text` writes it. Plain wrappers end their prompt with it to prime the answer."""


def call_text(
    name: str, arguments: dict[str, Any] | str, inner_thoughts: str | None, *, inner_thoughts_in_params: bool = True
) -> str:
    """One call in the shape the model is asked to write: ``{"function": NAME, "params": {"inner_thoughts": ...}}``.

    Inner thoughts go first in ``params``, so the model thinks before it acts. ``arguments`` may be the JSON string
    an OpenAI-style message carries; one that does not read as an object is kept as that string.
    """
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            decoded = arguments
        arguments = decoded
    if isinstance(arguments, dict):
        params: dict[str, Any] | str = dict(arguments)
        if inner_thoughts_in_params and inner_thoughts is not None:
            params = {INNER_THOUGHTS: inner_thoughts, **{k: v for k, v in arguments.items() if k != INNER_THOUGHTS}}
    else:
        params = arguments
    # One line, as json.dumps lays it out by default: the layout the function-call grammar admits, so a call written
    # back reads exactly like the calls the model is made to write.
    body = json.dumps({"function": name, "params": params}, ensure_ascii=False)
    if not inner_thoughts_in_params and inner_thoughts:
        return f"{inner_thoughts}\n{body}"
    return body


def assistant_text(message: dict[str, Any], *, inner_thoughts_in_params: bool = True) -> str:
    """An earlier assistant turn: its function call written back as a call, or its plain text if it made none."""
    call = message.get("function_call")
    if not call and message.get("tool_calls"):
        call = (message["tool_calls"][0] or {}).get("function")
    content = message.get("content")
    if not call:
        return content or ""
    return call_text(
        call.get("name", ""),
        call.get("arguments") or {},
        content,
        inner_thoughts_in_params=inner_thoughts_in_params,
    )


def describe_functions(functions: list[dict[str, Any]]) -> str:
    """The function list, one function per line and one indented line per parameter, kept short for small models.

    ::

        send_message: Show a message to the user.
          message (string, required): What the user reads.
    """
    lines: list[str] = []
    for raw in functions:
        fn = raw.get("function", raw) if raw.get("type") == "function" else raw
        description = (fn.get("description") or "").strip()
        lines.append(f"{fn['name']}: {description}" if description else fn["name"])
        parameters = fn.get("parameters") or {}
        required = set(parameters.get("required") or ())
        for key, schema in (parameters.get("properties") or {}).items():
            if key == INNER_THOUGHTS:
                continue
            traits = [_type_words(schema)]
            if key in required:
                traits.append("required")
            text = (schema.get("description") or "").strip() if isinstance(schema, dict) else ""
            lines.append(f"  {key} ({', '.join(traits)})" + (f": {text}" if text else ""))
    return "\n".join(lines)


def call_instructions(functions: list[dict[str, Any]], *, inner_thoughts_in_params: bool = True) -> str:
    """What the model is told about answering: one JSON call per turn, its shape, and the functions it may call."""
    if inner_thoughts_in_params:
        shape = '{"function": "<name>", "params": {"inner_thoughts": "<private thoughts>", <arguments>}}'
        thoughts = "inner_thoughts is your private reasoning, a sentence or two; the user never sees it."
    else:
        shape = '{"function": "<name>", "params": {<arguments>}}'
        thoughts = "You may write a sentence of private reasoning before the JSON; the user never sees it."
    if any(_name_of(fn) == "send_message" for fn in functions):
        thoughts += " The user only reads what you pass to send_message."
    return (
        "Reply to every turn with one function call written as JSON, and nothing after it:\n"
        f"{shape}\n"
        f"{thoughts}\n"
        "\n"
        "Functions:\n"
        f"{describe_functions(functions)}"
    )


def _name_of(raw: dict[str, Any]) -> str:
    fn = raw.get("function", raw) if raw.get("type") == "function" else raw
    return str(fn.get("name", ""))


def _type_words(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_type_words(schema['items'])}"
    return str(kind)


class Turn(NamedTuple):
    """One turn of the conversation, ready for a format to frame: ``role`` is system, user, assistant or function."""

    role: str
    text: str
    name: str | None = None
    """For a function result: the function it answers."""

    @property
    def labelled(self) -> str:
        """The text, with a function result introduced by its function's name (MemGPT's results do not say it)."""
        return f"Result of {self.name or 'the function'}: {self.text}" if self.role == "function" else self.text


def chat_turns(
    messages: list[Message], instructions: str, answers: Mapping[int, str], *, preamble: str | None = None
) -> list[Turn]:
    """The turns a :class:`JSONCallWrapper` frames, the same for every format: first a system turn with the first
    system message (or ``preamble`` when there is none) and the function instructions after it; then each message,
    assistant answers as ``answers`` holds them, function results as ``function`` turns, later system messages (core
    memory, alerts) as ``system`` turns and anything else as the user's."""
    rest = list(enumerate(messages))
    system = preamble
    if rest and rest[0][1].get("role") == "system":
        system = _text(rest.pop(0)[1])
    turns = [Turn("system", f"{system}\n\n{instructions}" if system else instructions)]
    for i, message in rest:
        role = message.get("role")
        if role == "assistant":
            turns.append(Turn("assistant", answers[i]))
        elif role in ("function", "tool"):
            turns.append(Turn("function", _text(message), message.get("name") or None))
        else:
            turns.append(Turn("system" if role == "system" else "user", _text(message)))
    return turns


def _text(message: Message) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


class JSONCallWrapper(PromptWrapper):
    """A wrapper whose model answers with one JSON call. Subclasses only frame the turns (:meth:`render`).

    The plain variant ends the prompt with the opening of a call (:data:`ANSWER_OPENING`) so the model continues it;
    a ``-grammar`` variant (``grammar`` set) leaves that out, because the grammar already forces the shape.
    """

    answer_separator: ClassVar[str] = ""
    """Between the end of the rendered turns and the primed opening (a space after Airoboros' ``ASSISTANT:``)."""

    def chat_completion_to_prompt(
        self,
        messages: list[Message],
        functions: list[FunctionSchema],
        first_message: bool = False,
        *,
        written: Mapping[int, str] | None = None,
    ) -> str:
        instructions = call_instructions(functions, inner_thoughts_in_params=self.inner_thoughts_in_params)
        answers = {
            i: self.assistant_text(message, (written or {}).get(i))
            for i, message in enumerate(messages)
            if message.get("role") == "assistant"
        }
        prefix = self.answer_prefix()
        return self.render(messages, instructions, answers) + (self.answer_separator + prefix if prefix else "")

    def answer_prefix(self) -> str:
        return "" if self.grammar else ANSWER_OPENING

    def assistant_text(self, message: Message, written: str | None = None) -> str:
        """An earlier answer, written back exactly as the model wrote it (``written``) when that text is the same
        call, else in the canonical layout (a repaired answer, an edited call)."""
        text = assistant_text(message, inner_thoughts_in_params=self.inner_thoughts_in_params)
        if written and written.strip():
            # Normally the model continued the primed opening; a model that wrote the whole call is taken as is.
            for candidate in (self.answer_prefix() + written, written):
                if _same_json(candidate, text):
                    return candidate
        return text

    @abc.abstractmethod
    def render(self, messages: list[Message], instructions: str, answers: Mapping[int, str]) -> str:
        """Every message in the format's turns, the function instructions in the system part, ending where the
        assistant's answer starts. ``answers`` holds the text of each assistant message, by its index.
        :func:`chat_turns` lays them out; most formats only frame its turns."""


def _same_json(a: str, b: str) -> bool:
    """Both texts are strict JSON, and the same value."""
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return False
