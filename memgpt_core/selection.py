"""Which prompt wrapper to use: the one the user named, or the default for the backend (grammar if it can)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memgpt_core.wrapper import ChatCompletionWrapper

DEFAULT_WRAPPER = "airoboros-l2-70b-2.1"
DEFAULT_GRAMMAR_WRAPPER = "airoboros-l2-70b-2.1-grammar"


def default_wrapper_name(backend_cls: Any) -> str:
    """The seed page's rule: Airoboros with a grammar where the backend supports grammars, else the plain one."""
    capabilities = getattr(backend_cls, "capabilities", None)
    return DEFAULT_GRAMMAR_WRAPPER if getattr(capabilities, "grammar", False) else DEFAULT_WRAPPER


def choose_wrapper(name: str | None, backend_cls: Any) -> ChatCompletionWrapper:
    """A ready wrapper: ``name`` (``--model``) if given, else the default for ``backend_cls``.

    An unknown name raises ``NotInstalledError`` listing the installed wrappers.
    """
    from memgpt_core import plugins

    return plugins.get_wrapper(name or default_wrapper_name(backend_cls))
