"""Asking the backend: one completion, with a backend plugin's own crash turned into one line that names it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memgpt_core.backend import backend_failed
from memgpt_core.errors import MemGPTError

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
