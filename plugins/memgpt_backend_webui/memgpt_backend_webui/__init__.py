"""text-generation-webui backend for memgpt."""

from __future__ import annotations

from memgpt_core import hookimpl
from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import NotImplementedPluginError


class WebUIBackend(Backend):
    name = "webui"
    default_endpoint = "http://127.0.0.1:5000"
    capabilities = Capabilities(grammar_formats=frozenset({"gbnf"}))
    description = "text-generation-webui backend for memgpt."

    def complete(self, request):  # type: ignore[override]
        raise NotImplementedPluginError("the webui backend is not implemented yet")


@hookimpl
def register_backends(register):
    register(WebUIBackend)
