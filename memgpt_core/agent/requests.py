"""Asking the backend: one completion, with a backend plugin's own crash turned into one line that names it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memgpt_core.errors import MemGPTError, PluginFailedError

if TYPE_CHECKING:
    from memgpt_core.backend import Backend
    from memgpt_core.models import Completion, CompletionRequest


def ask(backend: Backend, request: CompletionRequest) -> Completion:
    """``backend.complete(request)``. A ``MemGPTError`` (the server down, an overflow ...) passes through as the
    backend raised it; anything else is a bug in the backend plugin, told as ``PluginFailedError``."""
    try:
        return backend.complete(request)
    except MemGPTError:
        raise
    except Exception as exc:
        raise backend_failed(backend, "completing", exc) from exc


def backend_failed(backend: Backend, doing: str, exc: BaseException) -> PluginFailedError:
    from memgpt_core import plugins

    try:
        owner = plugins.plugin_of("backends", backend.name)
    except MemGPTError:  # a backend made directly, not through the registry (tests, embedding code)
        owner = type(backend).__module__.split(".")[0]
    detail = " ".join(str(exc).split())[:200]
    return PluginFailedError(
        f"the {backend.name} backend from {owner} failed while {doing}: "
        f"{type(exc).__name__}{': ' + detail if detail else ''}; nothing was saved from this step",
        fix=f"report it to the authors of {owner}; meanwhile check the server at {backend.endpoint}, or use another "
        "backend (--backend)",
    )
