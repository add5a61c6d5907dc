"""Which prompt wrapper to use: the one the user named, or the default for the backend (grammar if it can)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memgpt_core.wrapper import ChatCompletionWrapper

DEFAULT_WRAPPER = "airoboros-l2-70b-2.1"
DEFAULT_GRAMMAR_WRAPPER = "airoboros-l2-70b-2.1-grammar"


def default_wrapper_name(backend_cls: Any) -> str:
    """The seed page's rule: Airoboros with a grammar where the backend takes GBNF grammars, else the plain one.

    The rule follows GBNF, not any constrained output: the seed page lists webui, llama.cpp and koboldcpp as the
    grammar backends and LM Studio as not. LM Studio's JSON-schema output is there for a user who asks for a
    ``-grammar`` wrapper by name, but it does not change the default MemGPT users expect.
    """
    capabilities = getattr(backend_cls, "capabilities", None)
    formats = getattr(capabilities, "grammar_formats", ())
    return DEFAULT_GRAMMAR_WRAPPER if "gbnf" in formats else DEFAULT_WRAPPER


def choose_wrapper(name: str | None, backend_cls: Any) -> ChatCompletionWrapper:
    """A ready wrapper: ``name`` (``--model``) if given, else the default for ``backend_cls``.

    An unknown name raises ``NotInstalledError`` listing the installed wrappers.
    """
    from memgpt_core import plugins

    return plugins.get_wrapper(name or default_wrapper_name(backend_cls))
