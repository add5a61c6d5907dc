"""The hook specifications: what a memgpt plugin can implement. Read this file as the plugin API's reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click


hookspec = pluggy.HookspecMarker("memgpt")

RegisterBackend = Callable[..., None]
"""``register(backend_class, *, aliases=())``: the class subclasses ``memgpt_core.backend.Backend``."""
RegisterWrapper = Callable[..., None]
"""``register(wrapper_class, *, name=None, aliases=())``: any class with MemGPT's two wrapper methods."""
RegisterGrammar = Callable[..., None]
"""``register(provider_class, *, aliases=())``: the class subclasses ``memgpt_core.grammar.GrammarProvider``."""


@hookspec
def register_backends(register: RegisterBackend) -> None:
    """Called the first time backends are needed. Call ``register(BackendClass)`` once per backend.

    ``BackendClass`` subclasses :class:`memgpt_core.backend.Backend` and sets ``name``, ``default_endpoint`` and
    ``capabilities``. A name another distribution already registered is refused, naming both distributions.
    """


@hookspec
def register_wrappers(register: RegisterWrapper) -> None:
    """Called the first time wrappers are needed. Call ``register(WrapperClass)`` once per prompt wrapper.

    ``WrapperClass`` has ``chat_completion_to_prompt(messages, functions, first_message=False) -> str`` and
    ``output_to_chat_completion_response(raw_llm_output) -> dict``. Pass ``name=`` unless the class sets ``name``.
    """


@hookspec
def register_grammars(register: RegisterGrammar) -> None:
    """Called the first time grammar providers are needed. Call ``register(ProviderClass)`` once per provider.

    ``ProviderClass`` subclasses :class:`memgpt_core.grammar.GrammarProvider`: from function schemas it builds a
    grammar in the formats it lists (``gbnf``, ``json_schema``).
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Called when the ``memgpt`` command line is built. Add commands with ``@cli.command()``.

    Keep the module that defines them light: import heavy libraries inside the command function.
    """


__all__ = [
    "RegisterBackend",
    "RegisterGrammar",
    "RegisterWrapper",
    "hookspec",
    "register_backends",
    "register_commands",
    "register_grammars",
    "register_wrappers",
]
