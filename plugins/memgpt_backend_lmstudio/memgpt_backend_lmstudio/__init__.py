"""LM Studio backends for memgpt: ``lmstudio`` (raw ``/v1/completions``, and JSON-schema structured output where LM
Studio has it) and ``lmstudio-legacy`` (MemGPT's name for its chat-completions path).

Only light modules are imported here; pydantic and requests load on the first completion.
"""

from __future__ import annotations

from memgpt_backend_lmstudio.backend import LMStudioBackend, LMStudioLegacyBackend
from memgpt_core import hookimpl

__all__ = ["LMStudioBackend", "LMStudioLegacyBackend"]


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(LMStudioBackend)
    register(LMStudioLegacyBackend)
