"""The backend contract: one server's HTTP API, turned into raw-text completions.

Kept free of heavy imports (pydantic, requests), because every installed backend is imported at start-up.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from memgpt_core.models import Completion, CompletionRequest


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared truthfully: the agent picks wrappers and budgets tokens from this."""

    grammar_formats: frozenset[str] = field(default_factory=frozenset)
    """Grammar formats the server accepts: ``"gbnf"`` and/or ``"json_schema"``. Empty: no constrained sampling."""
    exact_tokenizer: bool = False
    """``count_tokens`` asks the server, so counts use the model's own tokenizer."""
    server_context: bool = False
    """``context_window`` reads the server's real context size."""
    streaming: bool = False
    embedded: bool = False
    """``start_embedded`` can start a server of its own, with nothing configured."""

    @property
    def grammar(self) -> bool:
        return bool(self.grammar_formats)


class EmbeddedServer(abc.ABC):
    """A server a backend started itself. Use it as a context manager: it is stopped on every kind of exit."""

    endpoint: str
    wrapper: str
    """The wrapper that matches the embedded model's prompt format."""
    description: str = ""

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


Progress = Callable[[str], None]


class Backend(abc.ABC):
    """Subclass this and register the class with ``register_backends``.

    A backend is made per agent session with the endpoint the user configured (or ``default_endpoint``).
    """

    name: ClassVar[str]
    default_endpoint: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    description: ClassVar[str] = ""

    def __init__(self, endpoint: str | None = None, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.endpoint = self.normalize_endpoint(endpoint or self.default_endpoint)
        self.api_key = api_key
        self.timeout = timeout

    @classmethod
    def normalize_endpoint(cls, url: str) -> str:
        """Return the base URL this backend wants, or raise ConfigError showing the right one."""
        from memgpt_core.endpoints import normalize_base_url

        return normalize_base_url(url, backend=cls.name, default=cls.default_endpoint)

    def request(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        """One JSON call to this backend's server: ``endpoint + path``, with its name and API key.

        Failures arrive as BackendError subclasses naming the URL and the fix (see ``memgpt_core.http``).
        """
        from memgpt_core.http import request_json

        return request_json(
            method,
            self.endpoint + path,
            backend=self.name,
            json=body,
            api_key=self.api_key,
            timeout=self.timeout if timeout is None else timeout,
        )

    @abc.abstractmethod
    def complete(self, request: CompletionRequest) -> Completion:
        """Run one completion. Raise a ``BackendError`` subclass, never a library's own exception."""

    def count_tokens(self, text: str) -> int | None:
        """Exact token count from the server's tokenizer, or None if this backend has none."""
        return None

    def context_window(self) -> int | None:
        """The server's real context size, or None if the server does not say."""
        return None

    def model_name(self) -> str | None:
        """The name of the loaded model, if the server says."""
        return None

    def wait_until_ready(self, timeout: float = 300.0, progress: Progress | None = None) -> None:  # noqa: B027
        """Block until the server can serve completions (for example while it loads its model). Optional."""

    @classmethod
    def start_embedded(
        cls, *, model_path: str | None = None, context_window: int | None = None
    ) -> EmbeddedServer | None:
        """Start a server of this backend's kind on loopback, or return None if this backend cannot."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} at {self.endpoint}>"
