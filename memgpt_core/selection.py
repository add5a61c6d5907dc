"""The two choices made for every agent, written once: which wrapper, and which grammar (if any) for it.

``memgpt run``, ``memgpt send``, ``memgpt doctor`` and the agent all ask here, so they cannot disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memgpt_core.backend import Backend
    from memgpt_core.models import Grammar
    from memgpt_core.wrapper import Wrapper

DEFAULT_WRAPPER = "airoboros-l2-70b-2.1"
DEFAULT_GRAMMAR_WRAPPER = "airoboros-l2-70b-2.1-grammar"
MAX_STRING_CHARS = 600
"""The grammar's cap on any one string, whatever the budget: it stops a small model repeating itself for minutes."""


def default_wrapper_name(backend_cls: type[Backend] | Backend, embedded_wrapper: str | None = None) -> str:
    """The wrapper to use when the user names none.

    The embedded server's model brings its own format. Otherwise the seed page's rule: Airoboros with a grammar on a
    backend that supports grammar-based sampling (GBNF or a JSON schema, as it declares), else the plain one.
    ``backend_cls`` is the backend class, or a backend that has met its server (``wait_until_ready``): its
    capabilities are then that server's, which for a backend such as ``openai`` is more than its class declares.
    """
    if embedded_wrapper:
        return embedded_wrapper
    return DEFAULT_GRAMMAR_WRAPPER if backend_cls.capabilities.grammar else DEFAULT_WRAPPER


def choose_wrapper_name(
    requested: str | None, backend_cls: type[Backend] | Backend, embedded_wrapper: str | None = None
) -> str:
    """``--model`` if given, else :func:`default_wrapper_name`."""
    return requested or default_wrapper_name(backend_cls, embedded_wrapper)


def choose_wrapper(
    requested: str | None, backend_cls: type[Backend] | Backend, embedded_wrapper: str | None = None
) -> Wrapper:
    """A ready wrapper: :func:`choose_wrapper_name`, made. An unknown name raises ``NotInstalledError`` listing the
    installed wrappers."""
    from memgpt_core import plugins

    return plugins.get_wrapper(choose_wrapper_name(requested, backend_cls, embedded_wrapper))


def negotiate_grammar(
    wrapper: Wrapper, backend: Backend, functions: list[dict[str, Any]], *, max_tokens: int
) -> tuple[Grammar | None, str | None]:
    """The grammar for these functions (built for an output cap of ``max_tokens``), or None and the one sentence
    saying why grammar sampling is off (None when neither side does grammars: nothing to say).

    Which provider: the one the wrapper asks for. Which format: the first of GBNF, then JSON schema, that both the
    backend and the provider take. A provider's declared error (``MemGPTError``) turns grammar sampling off with a
    note; anything else it raises is a bug in the plugin and raises ``PluginFailedError`` naming it.
    """
    from memgpt_core import plugins
    from memgpt_core.errors import MemGPTError, PluginFailedError
    from memgpt_core.models import Grammar

    accepted = backend.capabilities.grammar_formats
    provider_name = wrapper.grammar
    if not provider_name:
        if not accepted:
            return None, None
        return None, (
            f"grammar sampling is off: the {wrapper.name} wrapper asks for no grammar, although the {backend.name} "
            "backend supports one; use a -grammar wrapper for fewer unreadable answers"
        )
    if not accepted:
        return None, (
            f"grammar sampling is off: the {backend.name} backend accepts no grammar, so the model's output is "
            "repaired after the fact instead"
        )
    try:
        provider = plugins.get_grammar(provider_name)
    except MemGPTError as exc:
        return None, f"grammar sampling is off: {exc.message}"
    formats = [f for f in ("gbnf", "json_schema") if f in accepted and f in provider.formats]
    if not formats:
        return None, (
            f"grammar sampling is off: the {backend.name} backend takes {sorted(accepted)} but the {provider_name} "
            f"grammar provider makes {sorted(provider.formats)}"
        )
    try:
        text = provider.build(
            functions,
            format=formats[0],
            inner_thoughts_in_params=wrapper.inner_thoughts_in_params,
            max_string_length=MAX_STRING_CHARS,
            max_tokens=max_tokens,
        )
    except MemGPTError as exc:
        return None, f"grammar sampling is off: the {provider_name} grammar provider failed: {exc.message}"
    except Exception as exc:
        raise PluginFailedError.of(
            f"the {provider_name} grammar provider",
            plugins.plugin_of("grammars", provider_name),
            "building a grammar",
            exc,
            instead="use a wrapper without -grammar",
        ) from exc
    return Grammar(format=formats[0], text=text, provider=provider_name), None
