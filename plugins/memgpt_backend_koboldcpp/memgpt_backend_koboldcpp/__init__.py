"""KoboldCpp backend for memgpt: the KoboldAI API (``/api/v1/generate``) with GBNF grammars and exact token counts.

Only light modules are imported here; pydantic and requests load on the first completion.
"""

from __future__ import annotations

from memgpt_backend_koboldcpp.backend import KoboldCppBackend
from memgpt_core import hookimpl

__all__ = ["KoboldCppBackend"]


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(KoboldCppBackend)
