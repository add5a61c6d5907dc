"""OpenAI-compatible backends for memgpt: ``openai`` (any ``/v1/completions`` server; its dialect is found from the
server) and ``vllm`` (vLLM, with its structured outputs, ``/tokenize`` and ``max_model_len``).

Only the standard library and memgpt_core's light modules are imported here; pydantic and requests load on the first
request, so ``memgpt --help`` stays instant.
"""

from __future__ import annotations

from memgpt_backend_openai.backend import OpenAIBackend, VLLMBackend
from memgpt_core import hookimpl

__all__ = ["OpenAIBackend", "VLLMBackend"]


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(OpenAIBackend)
    register(VLLMBackend)
