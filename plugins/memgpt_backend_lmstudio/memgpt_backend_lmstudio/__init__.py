"""LM Studio backend for memgpt: raw ``/v1/completions``, and JSON-schema structured output where LM Studio has it.

Only light modules are imported here; pydantic and requests load on the first completion.
"""

from __future__ import annotations

from memgpt_backend_lmstudio.backend import LMStudioBackend
from memgpt_core import hookimpl

__all__ = ["LMStudioBackend"]


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(LMStudioBackend)
