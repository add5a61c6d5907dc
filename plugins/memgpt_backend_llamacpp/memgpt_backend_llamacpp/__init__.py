"""llama.cpp server backend for memgpt, with an embedded default server (llama-server and SmolLM2 from PyPI)."""

from __future__ import annotations

from memgpt_backend_llamacpp.backend import LlamaCppBackend
from memgpt_core import hookimpl

__all__ = ["LlamaCppBackend"]


@hookimpl
def register_backends(register) -> None:  # type: ignore[no-untyped-def]
    register(LlamaCppBackend)
