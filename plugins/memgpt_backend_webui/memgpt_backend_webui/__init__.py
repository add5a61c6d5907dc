"""text-generation-webui backends for memgpt: ``webui`` (its OpenAI-compatible API) and ``webui-legacy`` (/api/v1).

Only the standard library and memgpt_core's light modules are imported here; pydantic and requests load on the first
completion, so ``memgpt --help`` stays instant.
"""

from __future__ import annotations

from memgpt_backend_webui.backend import WebUIBackend, WebUILegacyBackend
from memgpt_core import hookimpl
from memgpt_core.backend import Capabilities

__all__ = ["WebUIBackend", "WebUILegacyBackend"]


@hookimpl
def register_backends(register):  # type: ignore[no-untyped-def]
    register(WebUIBackend)
    register(WebUILegacyBackend)


# Re-exported so tests and docs can read what each backend declares without instantiating it.
CAPABILITIES: dict[str, Capabilities] = {
    WebUIBackend.name: WebUIBackend.capabilities,
    WebUILegacyBackend.name: WebUILegacyBackend.capabilities,
}
