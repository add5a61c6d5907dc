"""Ollama backend for memgpt: raw prompts to ``/api/generate``, JSON-schema structured outputs, the model by name.

Only light modules are imported here; pydantic and requests load on the first request.
"""

from __future__ import annotations

from memgpt_backend_ollama.backend import MODEL_ENV, OllamaBackend
from memgpt_core import hookimpl

__all__ = ["MODEL_ENV", "OllamaBackend"]


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(OllamaBackend)
