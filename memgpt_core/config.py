"""Which backend to talk to: flags first, then MemGPT's variables (BACKEND_TYPE, OPENAI_API_BASE), else embedded."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memgpt_core.errors import ConfigError

if TYPE_CHECKING:
    from memgpt_core.backend import Backend, EmbeddedServer


TIMEOUT_ENV = "MEMGPT_TIMEOUT"
DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class BackendSettings:
    """Where completions come from. ``backend`` and ``endpoint`` both None means: start the embedded default."""

    backend: str | None = None
    endpoint: str | None = None
    api_key: str | None = None
    model_path: str | None = None
    context_window: int | None = None
    timeout: float = DEFAULT_TIMEOUT

    @property
    def embedded(self) -> bool:
        return self.backend is None and self.endpoint is None

    def __repr__(self) -> str:  # the key must never reach a log or a debug dump
        key = "***" if self.api_key else None
        return (
            f"BackendSettings(backend={self.backend!r}, endpoint={self.endpoint!r}, api_key={key!r}, "
            f"model_path={self.model_path!r}, context_window={self.context_window!r})"
        )


def resolve(
    *,
    backend: str | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    model_path: str | None = None,
    context_window: int | None = None,
    env: Mapping[str, str] | None = None,
) -> BackendSettings:
    """Combine flags with the environment. Flags win; empty strings count as unset."""
    env = os.environ if env is None else env
    backend = backend or env.get("BACKEND_TYPE") or None
    endpoint = endpoint or env.get("OPENAI_API_BASE") or None
    api_key = api_key or env.get("MEMGPT_API_KEY") or None
    model_path = model_path or env.get("MEMGPT_MODEL_PATH") or None
    if endpoint and not backend:
        raise ConfigError(
            f"OPENAI_API_BASE (or --endpoint) is set to {endpoint}, but no backend type is",
            fix="set BACKEND_TYPE (or --backend) to the server's kind: "
            "webui, webui-legacy, lmstudio, llamacpp or koboldcpp",
        )
    return BackendSettings(
        backend=backend,
        endpoint=endpoint,
        api_key=api_key,
        model_path=model_path,
        context_window=context_window,
        timeout=_timeout(env),
    )


def _timeout(env: Mapping[str, str]) -> float:
    """Seconds one request may take (``MEMGPT_TIMEOUT``, default 600): a large model on a CPU can need more."""
    raw = (env.get(TIMEOUT_ENV) or "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(
            f"{TIMEOUT_ENV}={raw!r} is not a number of seconds",
            fix=f"set {TIMEOUT_ENV} to a positive number, such as 1200, or unset it for the default of "
            f"{DEFAULT_TIMEOUT:g} s",
        )
    return seconds


@contextlib.contextmanager
def connect(settings: BackendSettings) -> Iterator[tuple[Backend, EmbeddedServer | None]]:
    """Yield a ready backend, starting the embedded server first when nothing is configured; stop it on exit."""
    from memgpt_core import plugins

    if not settings.embedded:
        assert settings.backend is not None
        cls = plugins.get_backend(settings.backend)
        yield cls(settings.endpoint, api_key=settings.api_key, timeout=settings.timeout), None
        return

    candidates = [cls for cls in plugins.get_backends().values() if cls.capabilities.embedded]
    if not candidates:
        raise ConfigError(
            "no backend is configured, and no installed backend can start an embedded server",
            fix="pip install memgpt-backend-llamacpp for the embedded default, or set BACKEND_TYPE and "
            "OPENAI_API_BASE to your own server",
        )
    cls = candidates[0]
    server = cls.start_embedded(model_path=settings.model_path, context_window=settings.context_window)
    if server is None:
        raise ConfigError(f"the {cls.name} backend could not start an embedded server")
    with server:
        yield cls(server.endpoint, timeout=settings.timeout), server
