"""Jinja rendering of a model's chat template, set up as Hugging Face transformers sets it up.

Chat templates are written for ``tokenizer.apply_chat_template``: a sandboxed environment with ``trim_blocks`` and
``lstrip_blocks``, a ``raise_exception`` global the template calls to refuse a conversation, a ``tojson`` filter that
does not escape HTML, ``strftime_now`` for templates that print today's date, and the loop controls (``break``,
``continue``). Templates that mark the assistant's text for training with ``{% generation %}`` blocks compile too; the
marks are dropped.

This module imports jinja2 and is imported only when a template is handed over, never at start-up.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

import jinja2
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateRefused(jinja2.TemplateError):
    """The template called ``raise_exception``: it will not render this conversation."""


def _raise_exception(message: Any) -> None:
    raise TemplateRefused(str(message))


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    # Jinja's own tojson escapes <, > and & for HTML; a prompt wants the characters themselves.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _GenerationBlocks(Extension):
    """``{% generation %} ... {% endgeneration %}``: kept as its body (it only marks text for training masks)."""

    tags: ClassVar[set[str]] = {"generation"}

    def parse(self, parser: Any) -> Any:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def compile_template(source: str) -> jinja2.Template:
    """The compiled template; raises ``jinja2.TemplateSyntaxError`` when the text is not valid Jinja."""
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationBlocks, "jinja2.ext.loopcontrols"],
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = _strftime_now
    return environment.from_string(source)


def render(template: jinja2.Template, messages: list[dict[str, str]], *, bos_token: str, eos_token: str) -> str:
    """The conversation as the template writes it, ending with the opening of the assistant's next turn."""
    return template.render(messages=messages, add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token)


def describe(exc: BaseException) -> str:
    """One line for an error the template raised or a syntax error in it: its own words, with the line if known."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split()) or type(exc).__name__
    if isinstance(exc, TemplateRefused):
        return text
    line = getattr(exc, "lineno", None)
    where = f" (line {line})" if isinstance(exc, jinja2.TemplateSyntaxError) and line else ""
    return f"{type(exc).__name__}: {text}{where}"
