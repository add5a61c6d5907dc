"""The hook specifications: what a memgpt plugin can implement. Read this file as the plugin API's reference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    import click

    from memgpt_core.backend import Backend
    from memgpt_core.grammar import GrammarProvider


hookspec = pluggy.HookspecMarker("memgpt")


class RegisterBackend(Protocol):
    """``register(backend_class, *, name=None, aliases=())``: the class subclasses ``memgpt_core.backend.Backend``."""

    def __call__(self, backend_class: type[Backend], *, name: str | None = None, aliases: tuple[str, ...] = ()) -> None:
        """Record ``backend_class`` under its ``name`` (or ``name=``) and each alias; a taken name is refused."""


class RegisterWrapper(Protocol):
    """``register(wrapper, *, name=None, aliases=())``: a class with MemGPT's two wrapper methods, or an instance of
    one made with constructor arguments (as MemGPT made its ``-grammar`` variants)."""

    def __call__(self, wrapper: object, *, name: str | None = None, aliases: tuple[str, ...] = ()) -> None:
        """Record ``wrapper_class`` under its ``name`` (or ``name=``) and each alias; a taken name is refused."""


class RegisterGrammar(Protocol):
    """``register(provider_class, *, name=None, aliases=())``: a ``memgpt_core.grammar.GrammarProvider`` subclass."""

    def __call__(
        self, provider_class: type[GrammarProvider], *, name: str | None = None, aliases: tuple[str, ...] = ()
    ) -> None:
        """Record ``provider_class`` under its ``name`` (or ``name=``) and each alias; a taken name is refused."""


@hookspec
def register_backends(register: RegisterBackend) -> None:
    """Called the first time backends are needed. Call ``register(BackendClass)`` once per backend.

    ``BackendClass`` subclasses :class:`memgpt_core.backend.Backend` and sets ``name``, ``default_endpoint`` and
    ``capabilities``. A name another distribution already registered is refused, naming both distributions.
    """


@hookspec
def register_wrappers(register: RegisterWrapper) -> None:
    """Called the first time wrappers are needed. Call ``register(WrapperClass)`` once per prompt wrapper.

    Either a subclass of :class:`memgpt_core.wrapper.PromptWrapper`, or a class written for MemGPT 0.3
    (``chat_completion_to_prompt(messages, functions, function_documentation=None)`` and
    ``output_to_chat_completion_response(raw_llm_output)``), as a class or as an instance made with constructor
    arguments. Pass ``name=`` unless the class sets ``name``. Core adapts each once
    (:class:`memgpt_core.wrapper.Wrapper`).
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
