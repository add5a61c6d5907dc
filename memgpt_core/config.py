"""Every setting of a session, and which one wins: flags, then MemGPT's variables (``BACKEND_TYPE``,
``OPENAI_API_BASE`` ...), then the agent's stored choices, then the config file, then the embedded default.

:func:`choose` is the one place that order is written; ``memgpt run``, ``send`` and ``doctor`` all ask it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from memgpt_core.errors import ConfigError, NotInstalledError

if TYPE_CHECKING:
    from memgpt_core.backend import Backend, EmbeddedServer
    from memgpt_core.settings_file import ConfigFile


TIMEOUT_ENV = "MEMGPT_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
MODEL_NAME_ENV = "MEMGPT_MODEL_NAME"

LEVELS = ("flag", "environment", "agent", "config file", "default")
"""The order, highest first. ``Settings.origin`` says which of these each setting came from."""

# The variable behind each setting of the "environment" level.
ENV_NAMES = {
    "backend": "BACKEND_TYPE",
    "endpoint": "OPENAI_API_BASE",
    "model_name": MODEL_NAME_ENV,
    "model_path": "MEMGPT_MODEL_PATH",
}
# The config file's section and key for each setting.
FILE_KEYS = {
    "backend": ("model", "model_endpoint_type"),
    "endpoint": ("model", "model_endpoint"),
    "model_name": ("model", "model"),
    "wrapper": ("model", "model_wrapper"),
    "context_window": ("model", "context_window"),
    "model_path": ("local", "model_path"),
    "max_tokens": ("local", "max_tokens"),
    "persona": ("defaults", "persona"),
    "human": ("defaults", "human"),
}
# Settings that only make sense for the server they were given with: a level naming another backend is passed over.
_BELONG_TO_BACKEND = ("endpoint", "model_name")


@dataclass(frozen=True)
class Choices:
    """What one level of the order says; None (or empty) where it says nothing."""

    backend: str | None = None
    endpoint: str | None = None
    model_name: str | None = None
    wrapper: str | None = None
    context_window: int | None = None
    model_path: str | None = None
    max_tokens: int | None = None
    sampling: Mapping[str, float | int] = field(default_factory=dict)
    persona: str | None = None
    human: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Choices:
        """MemGPT's variables (``BACKEND_TYPE``, ``OPENAI_API_BASE``) and ours (``MEMGPT_MODEL_NAME``,
        ``MEMGPT_MODEL_PATH``); empty strings count as unset."""
        return cls(**{name: (env.get(var) or "").strip() or None for name, var in ENV_NAMES.items()})

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Choices:
        """An agent's remembered choices (``AgentRecord.config``); keys it does not hold are ignored."""
        known = {f.name for f in fields(cls)} - {"persona", "human"}
        values = {k: v for k, v in stored.items() if k in known and v not in (None, "")}
        values["sampling"] = dict(values.get("sampling") or {})
        return cls(**values)

    @classmethod
    def from_file(cls, file: ConfigFile) -> Choices:
        return cls(
            **{name: getattr(file, name) for name in FILE_KEYS},
            sampling=dict(file.sampling),
        )

    def to_stored(self) -> dict[str, Any]:
        """What an agent remembers of these choices (never persona or human: those became its core memory)."""
        stored: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("sampling", "persona", "human") and getattr(self, f.name) is not None
        }
        if self.sampling:
            stored["sampling"] = dict(self.sampling)
        return stored


@dataclass(frozen=True)
class BackendSettings:
    """Where completions come from. ``backend`` and ``endpoint`` both None means: start the embedded default."""

    backend: str | None = None
    endpoint: str | None = None
    api_key: str | None = None
    model_path: str | None = None
    context_window: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    model_name: str | None = None
    """The model the server should use (``--model-name``), for backends that take ``model=``."""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Where ``backend`` and ``endpoint`` came from, in words, for messages ("[model] model_endpoint in ...")."""

    @property
    def embedded(self) -> bool:
        return self.backend is None and self.endpoint is None

    def __repr__(self) -> str:  # the key must never reach a log or a debug dump
        key = "***" if self.api_key else None
        return (
            f"BackendSettings(backend={self.backend!r}, endpoint={self.endpoint!r}, api_key={key!r}, "
            f"model_path={self.model_path!r}, context_window={self.context_window!r}, "
            f"model_name={self.model_name!r})"
        )


@dataclass(frozen=True)
class Settings:
    """The outcome of :func:`choose`: the backend settings, the rest of a session's settings, and where each one
    came from (``origin[name]`` is one of :data:`LEVELS`; sampling settings as ``sampling.NAME``)."""

    backend: BackendSettings
    wrapper: str | None = None
    max_tokens: int | None = None
    sampling: dict[str, float | int] = field(default_factory=dict)
    persona: str | None = None
    human: str | None = None
    origin: dict[str, str] = field(default_factory=dict)
    file: ConfigFile | None = None

    def source(self, name: str) -> str:
        """Where the setting ``name`` came from, in words: ``--backend``, ``BACKEND_TYPE``, ``the agent's stored
        choice``, ``[model] model_endpoint_type in /home/me/.memgpt/config, line 3`` or ``the default``."""
        return _source(name, self.origin.get(name, "default"), self.file)


def _source(name: str, level: str, file: ConfigFile | None) -> str:
    if level == "flag":
        return "--" + name.removeprefix("sampling.").replace("_", "-")
    if level == "environment":
        return ENV_NAMES.get(name, name)
    if level == "agent":
        return "the agent's stored choice"
    if level == "config file" and file is not None:
        if name.startswith("sampling."):
            return file.where("sampling", name.removeprefix("sampling."))
        return file.where(*FILE_KEYS[name])
    return "the default"


def choose(
    flags: Choices,
    *,
    stored: Mapping[str, Any] | None = None,
    file: ConfigFile | None = None,
    env: Mapping[str, str] | None = None,
    api_key: str | None = None,
) -> Settings:
    """Combine the levels, highest first: ``flags``, the environment, the agent's ``stored`` choices, the config
    ``file``, the defaults. Each setting comes from the highest level that names it, with one rule more: a server's
    endpoint and model name are taken only from a level that names no backend or the same backend, so a URL is
    never paired with a server of another kind. Sampling settings are combined one by one."""
    from memgpt_core import sampling as sampling_model

    env = os.environ if env is None else env
    levels = [
        ("flag", flags),
        ("environment", Choices.from_env(env)),
        ("agent", Choices.from_stored(stored or {})),
        ("config file", Choices.from_file(file) if file is not None else Choices()),
    ]
    origin: dict[str, str] = {}

    def first(name: str, backend: str | None = None) -> Any:
        for level, choices in levels:
            value = getattr(choices, name)
            if value is None:
                continue
            if name in _BELONG_TO_BACKEND and choices.backend is not None and choices.backend != backend:
                continue
            origin[name] = level
            return value
        return None

    backend = first("backend")
    values = {name: first(name, backend) for name in ("endpoint", "model_name", "wrapper", "context_window")}
    values.update({name: first(name) for name in ("model_path", "max_tokens")})
    persona, human = first("persona"), first("human")

    combined: dict[str, float | int] = sampling_model.defaults_for(backend)
    for name in combined:
        origin[f"sampling.{name}"] = "default"
    for level, choices in reversed(levels):
        for name, value in choices.sampling.items():
            combined[name] = value
            origin[f"sampling.{name}"] = level

    order = {setting.name: i for i, setting in enumerate(sampling_model.SETTINGS)}
    combined = dict(sorted(combined.items(), key=lambda item: order.get(item[0], len(order))))
    endpoint = values["endpoint"]
    if endpoint and not backend:
        where = _source("endpoint", origin["endpoint"], file)
        raise ConfigError(
            f"{where} sets the server's URL to {endpoint}, but nothing says which kind of server it is",
            fix="set BACKEND_TYPE (or --backend, or model_endpoint_type in the config file) to the server's kind: "
            "llamacpp, koboldcpp, webui, webui-legacy, lmstudio, lmstudio-legacy, ollama, openai or vllm "
            "(`memgpt plugins list` shows what is installed); `memgpt configure` sets both",
        )
    timeout = _timeout(env)
    if not (env.get(TIMEOUT_ENV) or "").strip() and file is not None and file.timeout:
        timeout = file.timeout
    sources = {name: _source(name, origin[name], file) for name in ("backend", "endpoint") if name in origin}
    backend_settings = BackendSettings(
        backend=backend,
        endpoint=endpoint,
        api_key=api_key or env.get("MEMGPT_API_KEY") or None,
        model_path=values["model_path"],
        context_window=values["context_window"],
        timeout=timeout,
        model_name=values["model_name"],
        sources=sources,
    )
    return Settings(
        backend=backend_settings,
        wrapper=values["wrapper"],
        max_tokens=values["max_tokens"],
        sampling=combined,
        persona=persona,
        human=human,
        origin=origin,
        file=file,
    )


def resolve(
    *,
    backend: str | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    model_path: str | None = None,
    context_window: int | None = None,
    model_name: str | None = None,
    env: Mapping[str, str] | None = None,
    file: ConfigFile | None = None,
) -> BackendSettings:
    """The backend settings from flags, the environment and (when given) the config file: :func:`choose` without
    an agent. Flags win; empty strings count as unset."""
    flags = Choices(
        backend=backend or None,
        endpoint=endpoint or None,
        model_path=model_path or None,
        context_window=context_window,
        model_name=model_name or None,
    )
    return choose(flags, env=env, file=file, api_key=api_key).backend


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


def takes_model_name(cls: type[Backend]) -> bool:
    """Whether the backend's constructor takes ``model=`` (the model a server serving several should use). A
    backend with the base signature does not, and is never passed one."""
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False
    model = parameters.get("model")
    return model is not None and model.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def make_backend(cls: type[Backend], settings: BackendSettings, endpoint: str | None = None) -> Backend:
    """``cls`` made for ``settings``: the endpoint, the key, the timeout, and the model name where it takes one."""
    kwargs: dict[str, Any] = {"api_key": settings.api_key, "timeout": settings.timeout}
    if settings.model_name and takes_model_name(cls):
        kwargs["model"] = settings.model_name
    return cls(endpoint or settings.endpoint, **kwargs)


@contextlib.contextmanager
def connect(settings: BackendSettings) -> Iterator[tuple[Backend, EmbeddedServer | None]]:
    """Yield a ready backend, starting the embedded server first when nothing is configured; stop it on exit."""
    from memgpt_core import plugins
    from memgpt_core.distributions import install_command

    if not settings.embedded:
        assert settings.backend is not None
        try:
            cls = plugins.get_backend(settings.backend)
        except NotInstalledError as exc:
            source = settings.sources.get("backend")
            if source is None or source.startswith("--"):
                raise
            raise NotInstalledError(
                f"{exc.message} (the name comes from {source})", fix=exc.fix or "run `memgpt configure`"
            ) from None
        yield make_backend(cls, settings), None
        return

    candidates = [cls for cls in plugins.get_backends().values() if cls.capabilities.embedded]
    if not candidates:
        raise ConfigError(
            "no backend is configured, and no installed backend can start an embedded server",
            fix=f"{install_command('memgpt-backend-llamacpp')} for the embedded default, or set BACKEND_TYPE and "
            "OPENAI_API_BASE to your own server",
        )
    cls = candidates[0]
    server = cls.start_embedded(model_path=settings.model_path, context_window=settings.context_window)
    if server is None:
        raise ConfigError(f"the {cls.name} backend could not start an embedded server")
    with server:
        yield cls(server.endpoint, timeout=settings.timeout), server
