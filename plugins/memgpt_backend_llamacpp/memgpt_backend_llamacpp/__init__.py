"""llama.cpp server backend for memgpt, with an embedded default server."""

from __future__ import annotations

from memgpt_core import hookimpl
from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import NotImplementedPluginError


class LlamaCppBackend(Backend):
    name = "llamacpp"
    default_endpoint = "http://127.0.0.1:8080"
    capabilities = Capabilities(grammar_formats=frozenset({"gbnf", "json_schema"}))
    description = "llama.cpp server backend for memgpt, with an embedded default server."

    def complete(self, request):  # type: ignore[override]
        raise NotImplementedPluginError("the llamacpp backend is not implemented yet")


@hookimpl
def register_backends(register):
    register(LlamaCppBackend)
