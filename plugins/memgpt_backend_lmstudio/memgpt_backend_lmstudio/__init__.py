"""LM Studio backend for memgpt."""

from __future__ import annotations

from memgpt_core import hookimpl
from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import NotImplementedPluginError


class LMStudioBackend(Backend):
    name = "lmstudio"
    default_endpoint = "http://127.0.0.1:1234"
    capabilities = Capabilities(grammar_formats=frozenset({"json_schema"}))
    description = "LM Studio backend for memgpt."

    def complete(self, request):  # type: ignore[override]
        raise NotImplementedPluginError("the lmstudio backend is not implemented yet")


@hookimpl
def register_backends(register):
    register(LMStudioBackend)
