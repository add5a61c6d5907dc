"""KoboldCpp backend for memgpt."""

from __future__ import annotations

from memgpt_core import hookimpl
from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import NotImplementedPluginError


class KoboldCppBackend(Backend):
    name = "koboldcpp"
    default_endpoint = "http://127.0.0.1:5001"
    capabilities = Capabilities(grammar_formats=frozenset({"gbnf"}))
    description = "KoboldCpp backend for memgpt."

    def complete(self, request):  # type: ignore[override]
        raise NotImplementedPluginError("the koboldcpp backend is not implemented yet")


@hookimpl
def register_backends(register):
    register(KoboldCppBackend)
