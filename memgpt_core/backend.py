"""The backend contract: one server's HTTP API, turned into raw-text completions.

Kept free of heavy imports (pydantic, requests), because every installed backend is imported at start-up.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from memgpt_core.errors import PluginFailedError
    from memgpt_core.models import Completion, CompletionRequest, Grammar

# How error messages name each grammar format.
_FORMAT_NAMES = {"gbnf": "GBNF", "json_schema": "JSON-schema"}


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
    """``stream`` yields the text as the server writes it. Without it, ``stream`` yields the whole answer at once."""
    chat_template: bool = False
    """``chat_template`` reads the loaded model's chat template from the server."""
    embedded: bool = False
    """``start_embedded`` can start a server of its own, with nothing configured."""
    embeddings: bool = False
    """``embed`` can turn text into vectors (for archival memory). Ask this before calling ``embed``; a backend that
    declares it may still fail at run time when its server was not started for it (llama.cpp without
    ``--embeddings``), with an error naming the fix."""

    @property
    def grammar(self) -> bool:
        return bool(self.grammar_formats)


@dataclass(frozen=True)
class ChatTemplate:
    """The loaded model's chat template (the Jinja text a GGUF file carries as ``tokenizer.chat_template``), with
    the model's BOS and EOS strings where the server reports them."""

    source: str
    bos_token: str = ""
    eos_token: str = ""


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


@dataclass(frozen=True)
class Delta:
    """One piece of a streamed completion (``Backend.stream``): the text the server wrote since the last piece.

    The last piece, and only the last, carries ``completion``: the whole answer exactly as ``complete`` would have
    returned it, its ``text`` being every piece's ``text`` joined.
    """

    text: str
    completion: Completion | None = None


EMBED_BATCH = 32
"""The most texts core passes to one ``Backend.embed`` call."""


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

    def request_lines(self, method: str, path: str, body: Any = None) -> Iterator[str]:
        """One streamed call to this backend's server: ``endpoint + path``, with its name, API key and timeout (the
        longest silence allowed), yielding the answer's lines as they arrive (``memgpt_core.http.stream_lines``:
        nothing is sent before the first ``next()``; failures as ``request`` names them)."""
        from memgpt_core.http import stream_lines

        return stream_lines(
            method, self.endpoint + path, backend=self.name, json=body, api_key=self.api_key, timeout=self.timeout
        )

    @abc.abstractmethod
    def complete(self, request: CompletionRequest) -> Completion:
        """Run one completion. Raise a ``BackendError`` subclass, never a library's own exception."""

    def stream(self, request: CompletionRequest) -> Iterator[Delta]:
        """Run one completion, yielding its text as the server writes it (see ``Delta``). Declare
        ``capabilities.streaming`` when you override this; the default yields ``complete(request)`` as one piece.

        The contract:

        - Yield ``Delta(text)`` pieces in order, then exactly one ``Delta(text, completion)`` (its text may be '').
        - Errors are ``BackendError`` subclasses, as for ``complete``, raised from the iterator, also after some
          pieces were yielded: a stream the server cuts short, a piece that is not what the server's API documents
          (``BackendResponseError``), no byte for ``timeout`` seconds (``BackendTimeoutError``).
        - The caller may stop reading early (it closes the generator): release the connection in a ``finally``.
        """
        completion = self.complete(request)
        yield Delta(text=completion.text, completion=completion)

    def accepted_grammar(self, request: CompletionRequest) -> Grammar | None:
        """The request's grammar, checked against ``capabilities.grammar_formats``; None when it has no grammar.

        Call it before sending anything: a grammar in a format this backend does not declare raises ConfigError,
        naming the backend, its URL, the format it got and the wrapper to use instead.
        """
        grammar = request.grammar
        if grammar is None or grammar.format in self.capabilities.grammar_formats:
            return grammar
        from memgpt_core.errors import ConfigError

        given = f"and was given a {grammar.format} grammar"
        formats = sorted(self.capabilities.grammar_formats)
        if not formats:
            raise ConfigError(
                f"the {self.name} backend at {self.endpoint} takes no grammars (its server has no constrained "
                f"sampling), {given}",
                fix="use a wrapper without -grammar",
            )
        names = " and ".join(_FORMAT_NAMES.get(f, f) for f in formats)
        builds = "GBNF" if formats == ["gbnf"] else "a JSON schema" if formats == ["json_schema"] else names
        raise ConfigError(
            f"the {self.name} backend at {self.endpoint} takes {names} grammars only, {given}",
            fix=f"use a wrapper whose grammar provider builds {builds} (the built-in function-call provider does), "
            "or a wrapper without -grammar",
        )

    def check_prompt_fits(
        self, request: CompletionRequest, *, server: str, larger_context: str, window: int | None = None
    ) -> int | None:
        """Count the prompt before sending it, for servers that silently cut a prompt too long for their context.

        ``window`` defaults to ``request.context_window``. Raises ContextOverflowError (which makes the agent summarise
        and retry) when the prompt plus ``request.max_tokens`` does not fit. ``server`` is the server's name for the
        message ("KoboldCpp"); ``larger_context`` says how to give it more room, for the fix. Returns the prompt's
        token count, or None when there is no window or ``count_tokens`` gives None (the check is then skipped).
        """
        window = window or request.context_window
        if not window:
            return None
        prompt_tokens = self.count_tokens(request.prompt)
        if prompt_tokens is not None and prompt_tokens + request.max_tokens > window:
            from memgpt_core.errors import ContextOverflowError

            raise ContextOverflowError(
                f"the prompt is {prompt_tokens} tokens and {request.max_tokens} more are reserved for the answer, "
                f"which is more than the context window of {window} tokens ({self.endpoint}); {server} would "
                "silently drop the start of the prompt",
                url=self.endpoint,
                fix=f"the agent summarises its history and retries; if this repeats, {larger_context}",
                prompt_tokens=prompt_tokens,
                context_window=window,
            )
        return prompt_tokens

    def count_tokens(self, text: str) -> int | None:
        """Exact token count from the server's tokenizer, or None if this backend has none."""
        return None

    def context_window(self) -> int | None:
        """The server's real context size, or None if the server does not say."""
        return None

    def model_name(self) -> str | None:
        """The name of the loaded model, if the server says."""
        return None

    def chat_template(self) -> ChatTemplate | None:
        """The loaded model's chat template, or None if the server does not say (declare
        ``capabilities.chat_template`` when it can)."""
        return None

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        """One embedding vector per text, in the order given: archival memory's vectors, from the server's model.

        Declare ``capabilities.embeddings`` when you implement it; the default raises ConfigError saying that this
        backend cannot embed (so callers may also just call it and show that error). The contract:

        - ``texts``: one or more non-empty strings. Core sends at most ``EMBED_BATCH`` (32) per call, each a passage
          of a few hundred tokens at most, so one call is one request; split further only if the server needs it.
        - ``model``: the embedding model the user named (``MEMGPT_EMBEDDING_MODEL``), for servers that serve
          several (Ollama, an OpenAI-compatible router); None means the server's own or default model. A server with
          one model may ignore it.
        - Returns ``len(texts)`` lists of floats, all of one length (the model's dimension). Core normalises them and
          stores them as float32, so raw or normalised vectors both work; never pad or truncate them.
        - Errors: a ``BackendError`` subclass naming the URL, never a library's own exception. When the server
          could embed but is not set up for it (llama.cpp without ``--embeddings``, an Ollama model that is not an
          embedding model), raise ConfigError whose ``fix`` says what to change.

        The name stored with each vector is ``"<backend name>:<model>"``, the model being ``model`` or else
        ``model_name()``: implement ``model_name()`` too, so that a different model behind the same URL is noticed.
        """
        from memgpt_core.errors import ConfigError

        raise ConfigError(
            f"the {self.name} backend at {self.endpoint} cannot make embeddings",
            fix="point MEMGPT_EMBEDDING_ENDPOINT_TYPE at a backend that can (llamacpp started with --embeddings), "
            "or unset it to use the shipped model",
        )

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


def backend_failed(backend: Backend, doing: str, exc: BaseException) -> PluginFailedError:
    """A backend plugin's own exception (not a ``MemGPTError``) while ``doing`` something, as one line naming the
    backend and its distribution, for the step to end with."""
    from memgpt_core import plugins
    from memgpt_core.errors import MemGPTError, PluginFailedError

    try:
        owner = plugins.plugin_of("backends", backend.name)
    except MemGPTError:  # a backend made directly, not through the registry (tests, embedding code)
        owner = type(backend).__module__.split(".")[0]
    return PluginFailedError.of(
        f"the {backend.name} backend",
        owner,
        doing,
        exc,
        instead=f"check the server at {backend.endpoint}, or use another backend (--backend)",
    )
