"""``auto`` and ``auto-grammar``: the prompt written in the loaded model's own chat template.

The server reports the Jinja template the GGUF file carries; this wrapper renders the agent's conversation with it, so
that any model is prompted in the format it was trained on. Chat templates accept only what their model was trained
with, so the conversation is first folded into roles every template takes:

- the system text is one message: the agent's instructions, the function instructions, then the core-memory snapshot
  (what never changes first, so the server's prompt cache keeps it when the snapshot is retaken);
- a function result is a user message, ``Result of NAME: ...``; a system message in the middle of the conversation
  (an alert) is a user event, ``{"type": "system_alert", "message": ...}``, as MemGPT sent them;
- where the template has no system role, the system text opens the first user message;
- where the template insists that user and assistant alternate, consecutive messages of one role are joined.

What a template accepts is found out once, when it is handed over, by rendering tiny probe conversations with each
layout in turn (see :data:`LAYOUTS`) and keeping the first that renders every message and keeps the previous prompt
byte for byte, up to the end of its newest message, in the next one (the server's prompt cache depends on it). No
model names are matched.

Kept free of heavy imports: jinja2 is imported (through :mod:`memgpt_wrappers_auto.rendering`) only when a template
is handed over.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memgpt_core.errors import ConfigError
from memgpt_core.prompting import JSONCallWrapper
from memgpt_core.wrapper import TURN_MARKERS, Message

if TYPE_CHECKING:
    from memgpt_core.backend import ChatTemplate

INSTEAD = (
    "choose a wrapper with a fixed prompt format with --model: chatml, llama3, zephyr-7B or airoboros-l2-70b-2.1 "
    "(or chatml-grammar, llama3-grammar, zephyr-7B-grammar, airoboros-l2-70b-2.1-grammar)"
)
"""The fix every ConfigError of these wrappers gives."""

JOIN = "\n\n"
"""Between the parts of one folded message."""

# Where a turn ends in the formats the common turn markers miss (Gemma, Mistral, Llama 3's next header).
EXTRA_STOPS = ("<end_of_turn>", "<start_of_turn>", "<|start_header_id|>", "[INST]")


@dataclass(frozen=True)
class Layout:
    """How the folded conversation is laid out for one template."""

    system_role: bool
    """The system text is a message of its own (else it opens the first user message)."""
    merge: bool
    """Consecutive messages of one role are joined into one (the template wants user and assistant to alternate)."""

    def __str__(self) -> str:
        system = "system role" if self.system_role else "system text in the first user message"
        return f"{system}, {'alternating roles' if self.merge else 'messages as they come'}"


LAYOUTS = (
    Layout(system_role=True, merge=False),
    Layout(system_role=True, merge=True),
    Layout(system_role=False, merge=False),
    Layout(system_role=False, merge=True),
)
"""Tried in this order; the first the template renders faithfully is kept. Fewer changes to the conversation first."""


def fold(
    messages: list[Message], instructions: str, answers: Mapping[int, str], layout: Layout
) -> list[dict[str, str]]:
    """The conversation as plain ``{"role", "content"}`` messages in ``layout``: roles system (first, at most once),
    user and assistant only. ``answers`` holds the text of each assistant message, by its index in ``messages``."""
    rest = list(enumerate(messages))
    leading: list[str] = []
    while rest and rest[0][1].get("role") == "system":
        leading.append(_text(rest.pop(0)[1]))
    system = JOIN.join(part for part in (*leading[:1], instructions, *leading[1:]) if part)

    turns: list[tuple[str, str]] = []
    for i, message in rest:
        role = message.get("role")
        if role == "assistant":
            turns.append(("assistant", answers[i]))
        elif role in ("function", "tool"):
            turns.append(("user", f"Result of {message.get('name') or 'the function'}: {_text(message)}"))
        elif role == "system":
            event = {"type": "system_alert", "message": _text(message)}
            turns.append(("user", json.dumps(event, ensure_ascii=False)))
        else:
            turns.append(("user", _text(message)))

    folded: list[dict[str, str]] = []
    if layout.system_role:
        folded.append({"role": "system", "content": system})
    elif turns and turns[0][0] == "user":
        turns[0] = ("user", system + JOIN + turns[0][1])
    else:
        turns.insert(0, ("user", system))
    for role, text in turns:
        if layout.merge and folded and folded[-1]["role"] == role:
            folded[-1]["content"] += JOIN + text
        else:
            folded.append({"role": role, "content": text})
    return folded


# -- the probes -----------------------------------------------------------------------------------------------------

# An agent conversation in miniature, every kind of message in the order the agent sends them. Each text is a marker
# the rendered probe must contain.
_PROBE: list[Message] = [
    {"role": "system", "content": "probe-persona"},
    {"role": "system", "content": "probe-memory"},
    {"role": "user", "content": "probe-user-1"},
    {"role": "assistant", "content": None},
    {"role": "function", "name": "probe_function", "content": "probe-result-1"},
    {"role": "user", "content": "probe-user-2"},
    {"role": "assistant", "content": None},
    {"role": "system", "content": "probe-alert"},
    {"role": "user", "content": "probe-user-3"},
]
_PROBE_ANSWERS = {3: "probe-answer-1", 6: "probe-answer-2"}
_PROBE_FUNCTIONS = "probe-functions"
# The probe conversations rendered: every one the agent could send, which never ends with the assistant's own turn
# (some templates, Qwen3's, render the newest assistant turn differently from older ones).
_FIRST_TURN = 2  # the index of the probe's first message after its two system messages
_PROBE_ENDS = [end for end in range(_FIRST_TURN + 1, len(_PROBE) + 1) if _PROBE[end - 1]["role"] != "assistant"]


@dataclass(frozen=True)
class _Refusal:
    """Why a template did not take a layout; ``raised``: in an exception of its own."""

    reason: str
    raised: bool = False


def _marker(index: int) -> str:
    return _PROBE_ANSWERS.get(index) or str(_PROBE[index]["content"])


@dataclass(frozen=True)
class _Fitted:
    """A template ready to render: compiled, with the layout it takes and whether it writes the BOS token itself."""

    template: Any
    chat: ChatTemplate
    layout: Layout
    strip_bos: bool

    def render(self, folded: list[dict[str, str]]) -> str:
        from memgpt_wrappers_auto.rendering import render

        text = render(self.template, folded, bos_token=self.chat.bos_token, eos_token=self.chat.eos_token)
        if self.strip_bos and text.startswith(self.chat.bos_token):
            # llama.cpp's server adds the BOS token itself when it tokenizes the prompt of a model that asks for one
            # (add_bos_token, set for the models whose templates write it: Llama, Mistral, Gemma, Phi-3); the copy
            # the template wrote would be a second one. ChatTemplate does not say add_bos_token, so the template's
            # word is taken for it.
            text = text[len(self.chat.bos_token) :]
        return text


def _fit(template: Any, chat: ChatTemplate) -> _Fitted | str:
    """The template with the first layout it renders faithfully, or why no layout works (the template's own words
    where it raised)."""
    from memgpt_wrappers_auto.rendering import describe, render

    def attempt(layout: Layout, bos: str) -> list[str] | _Refusal:
        renders: list[str] = []
        previous_end = 0
        for end in _PROBE_ENDS:
            folded = fold(_PROBE[:end], _PROBE_FUNCTIONS, _PROBE_ANSWERS, layout)
            try:
                text = render(template, folded, bos_token=bos, eos_token=chat.eos_token)
            except Exception as exc:  # whatever the template raises: raise_exception, an undefined name, a type error
                return _Refusal(describe(exc), raised=True)
            if not isinstance(text, str):
                return _Refusal(f"it rendered {type(text).__name__}, not text")
            missing = [marker for marker in [_PROBE_FUNCTIONS, *map(_marker, range(end))] if marker not in text]
            if missing:
                return _Refusal(f"it leaves part of the conversation out ({missing[0]!r} with {layout})")
            if renders:
                # Byte-stable: the previous prompt, up to the end of its newest message, is unchanged.
                previous = renders[-1]
                last = _marker(previous_end - 1)
                stable = previous.rfind(last) + len(last)
                if text[:stable] != previous[:stable]:
                    return _Refusal(f"it rewrites earlier turns as the conversation grows ({layout})")
            renders.append(text)
            previous_end = end
        return renders

    refusals: list[_Refusal] = []
    for layout in LAYOUTS:
        outcome = attempt(layout, chat.bos_token)
        if isinstance(outcome, _Refusal):
            refusals.append(outcome)
            continue
        # The template writes the BOS token itself when the text starts with it only because bos_token says so.
        bos = chat.bos_token
        strip = False
        if bos and outcome[-1].startswith(bos):
            without = attempt(layout, "")
            strip = isinstance(without, list) and not without[-1].startswith(bos)
        return _Fitted(template, chat, layout, strip)
    # The last layout tried changes the conversation most; where the template raised, its own words say the most.
    raised = [refusal for refusal in refusals if refusal.raised]
    return (raised or refusals)[-1].reason


# -- the wrappers ---------------------------------------------------------------------------------------------------


class AutoWrapper(JSONCallWrapper):
    """The model's own chat template, answer primed with the opening of a JSON call."""

    name = "auto"
    description = (
        "The loaded model's own chat template (read from the server), the answer primed with the opening of a JSON call"
    )
    needs_chat_template = True
    stop_sequences = (*TURN_MARKERS, *EXTRA_STOPS)

    def __init__(self) -> None:
        self._fitted: _Fitted | None = None

    @property
    def layout(self) -> Layout | None:
        """The layout the template takes, once one was handed over."""
        return self._fitted.layout if self._fitted else None

    def use_chat_template(self, template: ChatTemplate | None) -> None:
        if template is None or not template.source.strip():
            raise ConfigError(
                f"the {self.name} wrapper writes the prompt in the model's own chat template, and no chat template "
                "is available: the backend cannot read one from the server, or the model file carries none",
                fix=INSTEAD,
            )
        from memgpt_wrappers_auto.rendering import compile_template, describe

        try:
            compiled = compile_template(template.source)
        except Exception as exc:  # jinja2.TemplateSyntaxError, mostly
            raise ConfigError(
                f"the model's chat template does not compile, so the {self.name} wrapper cannot use it: "
                f"{describe(exc)}",
                fix=INSTEAD,
            ) from exc
        fitted = _fit(compiled, template)
        if isinstance(fitted, str):
            raise ConfigError(
                f"the model's chat template fails for every message layout the {self.name} wrapper tried: {fitted}",
                fix=INSTEAD,
            )
        self._fitted = fitted

    def fold(self, messages: list[Message], instructions: str, answers: Mapping[int, str]) -> list[dict[str, str]]:
        """The messages the template is given: plain role/content pairs in the layout it takes."""
        return fold(messages, instructions, answers, self._ready().layout)

    def render(self, messages: list[Message], instructions: str, answers: Mapping[int, str]) -> str:
        fitted = self._ready()
        return fitted.render(fold(messages, instructions, answers, fitted.layout))

    def _ready(self) -> _Fitted:
        if self._fitted is None:
            raise ConfigError(
                f"the {self.name} wrapper has no chat template yet: core hands it the model's template before the "
                "first prompt (Wrapper.fit_to), and that did not happen",
                fix="call fit_to(backend) on the wrapper first, or " + INSTEAD,
            )
        return self._fitted


class AutoGrammarWrapper(AutoWrapper):
    """The model's own chat template with grammar sampling: no primed opening, the grammar forces the call."""

    name = "auto-grammar"
    description = "The loaded model's own chat template (read from the server) with grammar-constrained JSON calls"
    grammar = "function-call"


def _text(message: Message) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""
