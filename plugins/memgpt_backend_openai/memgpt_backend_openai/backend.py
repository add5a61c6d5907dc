"""The ``openai`` and ``vllm`` backends: the wrapper's prompt to an OpenAI-compatible ``/v1/completions``.

``openai`` serves any such server (vLLM, TGI, LocalAI, SGLang, llama.cpp's /v1, Ollama's /v1) and finds out which
kind it talks to, its *dialect*, from the server itself; ``vllm`` declares the vLLM dialect. A dialect decides what
the backend can honestly offer, and the instance's ``capabilities`` say exactly that once it is known (the class
attribute is what every server of the kind has: for ``openai``, nothing beyond completions).

Dialects, with the facts each relies on:

- **llama.cpp** (``llama-server``): ``GET /v1/models`` lists the model with ``"owned_by": "llamacpp"`` (older servers
  are recognised by ``GET /props``). ``POST /v1/completions`` passes llama.cpp's own fields through: ``grammar``
  (GBNF), ``json_schema`` (a JSON schema, turned into a grammar by the server) and ``ignore_eos``; it ignores
  ``response_format`` there (only its chat route reads that). ``POST /tokenize`` ``{"content", "add_special"}``
  answers ``{"tokens": [...]}``; ``GET /props`` has the per-slot context as ``default_generation_settings.n_ctx``.
  Errors: ``{"error": {"code", "message", "type"}}``; a prompt too long is 400 with ``"type":
  "exceed_context_size_error"`` and ``n_prompt_tokens``/``n_ctx``; while loading every route answers 503.
- **vLLM** (``vllm serve``): see :class:`VLLMBackend`.
- **OpenAI-compatible**, anything else: the prompt, ``max_tokens``, ``stop`` and the sampling settings, nothing
  more. No grammar (a field a server does not know is usually ignored without a word, so sending one would only
  pretend), token counts by the documented estimate, and the context from ``max_model_len`` in ``/v1/models``
  where the server lists one (SGLang does), else from ``--context-window``.

The model: with one model served (vLLM, llama.cpp, TGI) nothing needs saying; ``/v1/models`` names it and every
request names it back. A server that serves several (Ollama's /v1, LocalAI, vLLM with several models) needs one
chosen: ``MEMGPT_MODEL_NAME``, the variable the ollama backend reads for the same purpose (or ``model=`` when a
backend is made in code). Without it, the error lists what the server serves.

Only the standard library and core's light modules are imported here; pydantic and requests load on first use.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from memgpt_core.backend import Backend, Capabilities, Delta, Progress
from memgpt_core.errors import (
    BackendError,
    BackendHTTPError,
    BackendLoadingError,
    BackendResponseError,
    BackendUnavailableError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
)
from memgpt_core.openai_style import (
    ServedModel,
    ServerError,
    completion_body,
    read_completion,
    read_error,
    read_models,
    read_stream,
    stream_body,
)

if TYPE_CHECKING:
    from memgpt_core.models import Completion, CompletionRequest, Grammar

LLAMA_CPP = "llama.cpp"
VLLM = "vLLM"
GENERIC = "OpenAI-compatible"

STRUCTURED_OUTPUTS_SINCE = (0, 10, 2)
"""The first vLLM release that reads ``structured_outputs``; the ``guided_*`` fields it replaced were removed in
0.12.0, so neither field works on every version and the server's ``GET /version`` decides."""

# Every dialect declares embeddings: ``/v1/embeddings`` is part of the OpenAI API, and a server that was not started
# for it (llama.cpp without --embeddings, vLLM serving a generative model) is told by ``embed`` with the fix.
# Every dialect streams too: ``"stream": true`` on /v1/completions is part of the OpenAI API (see ``stream``).
_LLAMA_CPP_CAPABILITIES = Capabilities(
    grammar_formats=frozenset({"gbnf", "json_schema"}),
    exact_tokenizer=True,
    server_context=True,
    embeddings=True,
    streaming=True,
)
_VLLM_CAPABILITIES = Capabilities(
    grammar_formats=frozenset({"json_schema"}),
    exact_tokenizer=True,
    server_context=True,
    embeddings=True,
    streaming=True,
)
_GENERIC_CAPABILITIES = Capabilities(embeddings=True, streaming=True)

# The context-length refusals, as llama.cpp, vLLM (in the wordings of its releases) and OpenAI's API write them.
_OVERFLOW = re.compile(
    r"maximum context length|exceeds? the available context size|context_length_exceeded|context length exceeded",
    re.IGNORECASE,
)
_WINDOW = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_PROMPT_TOKENS = (
    re.compile(r"(\d+) input tokens", re.IGNORECASE),  # vLLM 0.11 and later
    re.compile(r"\((\d+) in the messages", re.IGNORECASE),  # vLLM up to 0.10
    re.compile(r"requested (\d+) tokens in the messages", re.IGNORECASE),
)
_UNSET: Any = object()
MODEL_ENV = "MEMGPT_MODEL_NAME"
"""The variable that names the model, for a server that serves several (shared with the ollama backend)."""
EMBEDDING_MODEL_ENV = "MEMGPT_EMBEDDING_MODEL"
_ELSEWHERE = (
    "; or point MEMGPT_EMBEDDING_ENDPOINT at a server that does, or unset MEMGPT_EMBEDDING_ENDPOINT_TYPE to use the "
    "shipped model"
)


class OpenAICompatibleBackend(Backend):
    """What ``openai`` and ``vllm`` share: the model choice, the request, the answers, the errors."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        model: str | None = None,
    ) -> None:
        super().__init__(endpoint, api_key=api_key, timeout=timeout)
        self.model = (model or os.environ.get(MODEL_ENV) or "").strip() or None
        """The model the user named; None: the one the server serves."""
        self._dialect: str | None = None
        self._served: Any = _UNSET  # list[ServedModel] | None, read once
        self._version: Any = _UNSET  # tuple[int, ...] | None, read once (vLLM)
        self._props: dict[str, Any] | None = None

    # -- what the server is ----------------------------------------------------------------------------------------

    def dialect(self) -> str:
        """The server's dialect (``LLAMA_CPP``, ``VLLM`` or ``GENERIC``), found once; the instance's
        ``capabilities`` are set to what that dialect can do."""
        if self._dialect is None:
            dialect = self._find_dialect()
            self.capabilities = self._capabilities_of(dialect)  # this server's truth, over the class's declaration
            self._dialect = dialect
        return self._dialect

    def _find_dialect(self) -> str:
        owners = {card.owned_by for card in self.served() or []}
        if "vllm" in owners:
            return VLLM
        if "llamacpp" in owners:
            return LLAMA_CPP
        try:
            props = self._call("GET", "/props", timeout=min(self.timeout, 30.0))
        except (BackendHTTPError, BackendResponseError):  # not llama.cpp: the route is missing or not JSON
            return GENERIC
        if isinstance(props, dict) and "default_generation_settings" in props:
            self._props = props
            return LLAMA_CPP
        return GENERIC

    def _capabilities_of(self, dialect: str) -> Capabilities:
        if dialect == LLAMA_CPP:
            return _LLAMA_CPP_CAPABILITIES
        if dialect == VLLM:
            return _VLLM_CAPABILITIES
        listed = any(card.max_model_len for card in self.served() or [])
        return Capabilities(server_context=listed, embeddings=True, streaming=True)

    def server(self) -> str:
        """The server as messages name it."""
        dialect = self._dialect or (VLLM if isinstance(self, VLLMBackend) else GENERIC)
        return {LLAMA_CPP: "the llama.cpp server", VLLM: "the vLLM server"}.get(dialect, "the OpenAI-compatible server")

    def served(self) -> list[ServedModel] | None:
        """``GET /v1/models``, read once; None when the server has no such list."""
        if self._served is _UNSET:
            try:
                answer = self._call("GET", "/v1/models", timeout=min(self.timeout, 30.0))
            except BackendHTTPError as exc:
                if exc.status not in (404, 405):
                    raise
                answer = None
            self._served = read_models(answer)
        return self._served  # type: ignore[no-any-return]

    def served_model(self) -> str | None:
        """The model every request names: the one the user named (``MEMGPT_MODEL_NAME``), else the one the server
        serves, else None (the server lists none, so it is sent no name and uses its own). Raises ConfigError when
        the server serves several and none is named."""
        if self.model:
            return self.model
        served = self.served()
        if served is None:
            return None
        if not served:
            raise BackendError(
                f"{self.server()} at {self.endpoint} serves no model (GET /v1/models lists none)",
                url=self.endpoint + "/v1/models",
                fix=f"load or pull a model on the server (Ollama: `ollama pull NAME`) and name it with {MODEL_ENV}",
            )
        bases = [card for card in served if not card.card.get("parent")] or served  # vLLM lists LoRA adapters too
        roots = {card.card.get("root") or card.id for card in bases}
        if len(roots) == 1:  # one model, perhaps under several names (vLLM's --served-model-name a b)
            return bases[0].id
        names = ", ".join(card.id for card in served[:8]) + (", ..." if len(served) > 8 else "")
        raise ConfigError(
            f"{self.server()} at {self.endpoint} serves {len(served)} models ({names}) and none is chosen",
            fix=f"set {MODEL_ENV} to one of them, for example `export {MODEL_ENV}={served[0].id}`",
        )

    # -- the backend contract ----------------------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """``POST /v1/completions`` with the prompt, ``max_tokens``, ``stop``, the sampling settings, the model, and
        the dialect's structured-output and end-of-text fields."""
        body = self._body(request)
        url = self.endpoint + "/v1/completions"
        answer = self._call("POST", "/v1/completions", body)
        return self._finished(read_completion(answer, url, server=self.server(), fix=self._wrong_url()), url)

    def stream(self, request: CompletionRequest) -> Iterator[Delta]:
        """The same request as ``complete``, streamed: ``"stream": true``, and for llama.cpp and vLLM (which document
        it) ``stream_options.include_usage``, so the last piece has the token counts; a server of unknown kind may
        refuse a field it does not know, so it is sent none and its counts may be missing. llama.cpp and vLLM end
        every stream with ``[DONE]``, so one without it was cut short; for others a finish reason is the end.

        Errors: an HTTP error before the stream is what ``complete`` raises for it; an error the server sends
        mid-stream is read the same way (an overflow is ContextOverflowError), else BackendResponseError."""
        body = self._body(request)
        known = self.dialect() in (LLAMA_CPP, VLLM)
        url = self.endpoint + "/v1/completions"
        lines = self.request_lines("POST", "/v1/completions", stream_body(body, include_usage=known))
        deltas = read_stream(
            lines,
            url,
            server=self.server(),
            fix=self._wrong_url(),
            on_error=lambda said: self._stream_error(said, url),
            needs_done=known,
        )
        try:
            for delta in deltas:
                if delta.completion is not None:
                    self._finished(delta.completion, url)
                yield delta
        except BackendHTTPError as exc:  # the server refused the request before streaming anything
            raise self._translate(exc, url) from None
        finally:
            deltas.close()

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        """The body of one completion (``stream: false``), for ``complete`` and ``stream`` alike."""
        dialect = self.dialect()
        grammar = self.accepted_grammar(request)
        body = completion_body(
            request, dialect={LLAMA_CPP: "llama.cpp", VLLM: "vllm"}.get(dialect, "openai"), model=self.served_model()
        )
        if grammar is not None:
            body.update(self._grammar_fields(grammar, dialect))
        if request.ban_eos and dialect in (LLAMA_CPP, VLLM):
            body["ignore_eos"] = True
        return body

    def _finished(self, done: Completion, url: str) -> Completion:
        """``done``, unless it is empty: the model ended at once, which the agent cannot use."""
        if not done.text:
            raise EmptyCompletionError(
                f"{self.server()} at {url} returned an empty completion (finish reason {done.finish_reason})",
                url=url,
                fix="the model ended its answer at once: check that the wrapper matches the model's prompt format "
                "and that no stop string matches the start of an answer (memgpt doctor shows both)",
            )
        return done

    def _wrong_url(self) -> str:
        return f"check that OPENAI_API_BASE (or --endpoint) is the server's base URL, like {self.default_endpoint}"

    def _stream_error(self, said: ServerError, url: str) -> BackendError:
        """An error the server sent in the middle of a stream, read as ``_translate`` reads the same error in an
        HTTP answer (llama.cpp and vLLM put the HTTP status in ``code``); one that means nothing more particular is
        a BackendResponseError, since the stream itself was answered 200."""
        code = _number(said.fields.get("code"))
        status = code if code is not None and 400 <= code < 600 else 500
        body = json.dumps({"error": dict(said.fields) if said.fields else said.message})
        fix = "look at the server's own log for the cause, then try again"
        translated = self._translate(BackendHTTPError(said.message, url=url, fix=fix, status=status, body=body), url)
        if type(translated) is not BackendHTTPError:
            return translated
        return BackendResponseError(
            f"{self.server()} at {url} broke off its answer with an error: {said.message or 'no message'}",
            url=url,
            fix=translated.fix,
        )

    def count_tokens(self, text: str) -> int | None:
        """The model's own count where the server has a tokenizer route (llama.cpp, vLLM), else None (the agent
        then uses the documented estimate)."""
        dialect = self.dialect()
        if dialect == LLAMA_CPP:
            answer = self._call(
                "POST", "/tokenize", {"content": text, "add_special": True}, timeout=min(self.timeout, 60.0)
            )
            tokens = answer.get("tokens") if isinstance(answer, dict) else None
            if isinstance(tokens, list):
                return len(tokens)
            raise self._unexpected("/tokenize", answer, "a 'tokens' list")
        if dialect == VLLM:
            body: dict[str, Any] = {"prompt": text}
            model = self.served_model()
            if model:
                body["model"] = model
            answer = self._call("POST", "/tokenize", body, timeout=min(self.timeout, 60.0))
            count = answer.get("count") if isinstance(answer, dict) else None
            if isinstance(count, int) and not isinstance(count, bool):
                return count
            raise self._unexpected("/tokenize", answer, "a 'count'")
        return None

    def context_window(self) -> int | None:
        """llama.cpp: the per-slot ``n_ctx`` from ``GET /props``; vLLM and others: the served model's
        ``max_model_len`` from ``GET /v1/models``; None where the server says nothing."""
        if self.dialect() == LLAMA_CPP:
            settings = self._llama_props().get("default_generation_settings")
            n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
            if isinstance(n_ctx, int) and n_ctx > 0:
                return n_ctx
        card = self._card()
        if card is None:
            return None
        if card.max_model_len:
            return card.max_model_len
        meta = card.card.get("meta")  # llama.cpp's /v1/models
        n_ctx = meta.get("n_ctx") if isinstance(meta, dict) else None
        return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None

    def model_name(self) -> str | None:
        return self.served_model()

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        """``POST /v1/embeddings`` ``{"input": [...], "model", "encoding_format": "float"}``: OpenAI's route, answered
        with ``data[]`` items that carry their ``index`` and ``embedding``. The model is ``model`` (the user's
        ``MEMGPT_EMBEDDING_MODEL``), else the one the server serves; none is sent when the server lists none.

        A server that cannot embed is a ConfigError with the fix: llama.cpp without ``--embeddings`` (501
        ``not_supported_error``) or with pooling ``none``; vLLM serving a generative model (older releases refuse
        with 400 "The model does not support Embeddings API", newer ones register no pooling routes, so the path
        is a 404).
        """
        self.dialect()  # what the server is decides how its refusals read
        if not model:
            try:
                model = self.served_model()
            except ConfigError as exc:  # several served: the embedding model is named by its own variable
                raise ConfigError(
                    exc.message, fix=f"set {EMBEDDING_MODEL_ENV} to the embedding model among them"
                ) from None
        body: dict[str, Any] = {"input": list(texts), "encoding_format": "float"}
        if model:
            body["model"] = model
        url = self.endpoint + "/v1/embeddings"
        try:
            data = self.request("POST", "/v1/embeddings", body)
        except BackendHTTPError as exc:
            raise self._embedding_error(exc, url, model) from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise self._unexpected("/v1/embeddings", data, f"a 'data' list of {len(texts)} embeddings")
        vectors: list[list[float] | None] = [None] * len(texts)
        for position, item in enumerate(items):
            index = item.get("index", position) if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if (
                not isinstance(index, int)
                or not 0 <= index < len(texts)
                or vectors[index] is not None
                or not isinstance(vector, list)
                or not vector
            ):
                raise self._unexpected("/v1/embeddings", data, "a distinct 'index' and an 'embedding' list per item")
            vectors[index] = vector
        return [vector for vector in vectors if vector is not None]

    def _embedding_error(self, exc: BackendHTTPError, url: str, model: str | None) -> BackendError:
        """An embedding request's HTTP error: a server not set up for embeddings as a ConfigError with the fix."""
        said = read_error(exc.body)
        server = self.server()
        if exc.status == 501 or said.type == "not_supported_error":
            return ConfigError(
                f"{server} at {self.endpoint} does not make embeddings ({said.message or exc.status})",
                fix="if it is llama-server, restart it with --embeddings --pooling mean (best with an embedding model, "
                "such as a GGUF of nomic-embed-text, as a second server)" + _ELSEWHERE,
            )
        if said.mentions("pooling type", "pooling_type"):
            return ConfigError(
                f"{server} at {self.endpoint} makes no pooled embeddings ({said.message})",
                fix="restart llama-server with --embeddings --pooling mean" + _ELSEWHERE,
            )
        if said.mentions("does not support embeddings") or (
            exc.status == 404 and not said.mentions("model") and self._dialect == VLLM
        ):
            serving = f" ({model})" if model else ""
            return ConfigError(
                f"{server} at {self.endpoint} serves a model that cannot make embeddings{serving}: "
                f"{said.message or exc.status}",
                fix="start a second vLLM with an embedding model (`vllm serve BAAI/bge-small-en-v1.5 --runner "
                "pooling`; older vLLM: `--task embed`) and point MEMGPT_EMBEDDING_ENDPOINT at it" + _ELSEWHERE,
            )
        if exc.status == 404 and said.mentions("model") and said.mentions("not exist", "not found", "notfound"):
            return ConfigError(
                f"{server} at {self.endpoint} has no embedding model {model!r}: {said.message}",
                fix=f"set {EMBEDDING_MODEL_ENV} to a model the server serves, or unset it when it serves only one",
            )
        if exc.status == 404:
            return ConfigError(
                f"{server} at {url} has no embeddings route (404: {said.message or 'not found'})",
                fix="use a server with an OpenAI-compatible /v1/embeddings" + _ELSEWHERE,
            )
        if said.mentions("too large", "too long", "maximum context length"):
            return BackendHTTPError(
                f"{server} at {url} refused a passage as too long to embed: {said.message}",
                url=url,
                fix="give the server a larger batch or context (llama-server --ubatch-size and --batch-size, vLLM "
                "--max-model-len), or set MEMGPT_EMBEDDING_CHUNK_SIZE lower and load the documents again",
                status=exc.status,
                body=exc.body,
            )
        return self._translate(exc, url)

    def wait_until_ready(self, timeout: float = 300.0, progress: Progress | None = None) -> None:
        """Find the dialect and the model before an agent is made, waiting while the server answers 503 (a model
        still loading); nothing answering, or several models and none chosen, is said at once."""
        began = time.monotonic()
        while True:
            try:
                self.dialect()
                self.served_model()
                return
            except BackendLoadingError as exc:
                waited = time.monotonic() - began
                if waited >= timeout:
                    raise BackendLoadingError(
                        f"{self.server()} at {self.endpoint} was still not ready after {timeout:.0f} s: {exc.message}",
                        url=exc.url,
                        fix="wait for it to finish loading (its own log shows progress), or give memgpt a longer "
                        "timeout",
                    ) from None
                if progress is not None:
                    progress(f"{self.server()} at {self.endpoint} is loading its model ({waited:.0f} s)")
                time.sleep(0.5)

    # -- the request's extra fields ------------------------------------------------------------------------------------

    def _grammar_fields(self, grammar: Grammar, dialect: str) -> dict[str, Any]:
        if grammar.format == "gbnf":  # only llama.cpp declares GBNF
            return {"grammar": grammar.text}
        schema = self._schema(grammar)
        if dialect == LLAMA_CPP:
            return {"json_schema": schema}
        version = self.vllm_version()
        if version is not None and version < STRUCTURED_OUTPUTS_SINCE:
            return {"guided_json": schema}
        return {"structured_outputs": {"json": schema}}

    def _schema(self, grammar: Grammar) -> Any:
        try:
            return json.loads(grammar.text)
        except ValueError as exc:
            raise ConfigError(
                f"the JSON-schema grammar from {grammar.provider or 'the grammar provider'} is not valid JSON "
                f"({exc}), so it was not sent to {self.endpoint}",
                fix="report it to the grammar provider's plugin, or use a wrapper without -grammar",
            ) from None

    def vllm_version(self) -> tuple[int, ...] | None:
        """vLLM's version from ``GET /version`` (``{"version": "0.10.2"}``), read once; None when it does not say."""
        if self._version is _UNSET:
            self._version = None
            try:
                answer = self._call("GET", "/version", timeout=min(self.timeout, 30.0))
            except (BackendHTTPError, BackendResponseError):
                answer = None
            said = answer.get("version") if isinstance(answer, dict) else None
            found = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", said) if isinstance(said, str) else None
            if found:
                self._version = tuple(int(part or 0) for part in found.groups())
        return self._version  # type: ignore[no-any-return]

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _card(self) -> ServedModel | None:
        served = self.served() or []
        model = self.served_model()
        return next((card for card in served if card.id == model), served[0] if len(served) == 1 else None)

    def _llama_props(self) -> dict[str, Any]:
        if self._props is None:
            props = self._call("GET", "/props", timeout=min(self.timeout, 30.0))
            self._props = props if isinstance(props, dict) else {}
        return self._props

    def _call(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        try:
            return self.request(method, path, body, timeout=timeout)
        except BackendHTTPError as exc:
            raise self._translate(exc, self.endpoint + path) from None

    def _translate(self, exc: BackendHTTPError, url: str) -> BackendError:
        """An HTTP error as what it means: an overflow the agent answers by summarising, a server still loading, a
        model that is not served, a refused grammar; otherwise the server's own sentence with the fix."""
        said = read_error(exc.body)
        status = exc.status
        if status == 400 and (said.type == "exceed_context_size_error" or _OVERFLOW.search(said.message)):
            return self._overflow(said, url)
        if status == 503:
            return BackendLoadingError(
                f"{self.server()} at {url} is not ready yet (503): {said.message or 'loading the model'}",
                url=url,
                fix="wait until it has loaded its model, then try again",
            )
        fix = exc.fix
        if status in (401, 403) and self.api_key:
            fix = "the API key was refused: set MEMGPT_API_KEY (or --api-key) to the key the server was started with"
        elif status == 404 and said.mentions("model") and said.mentions("not exist", "not found", "notfound"):
            served = ", ".join(card.id for card in (self._served if isinstance(self._served, list) else [])[:8])
            fix = (
                f"set {MODEL_ENV} to a model the server serves{f' ({served})' if served else ''}, or unset it "
                "when the server serves only one"
            )
        elif status == 404:
            fix = (
                f"this URL has no OpenAI-compatible API: OPENAI_API_BASE (or --endpoint) is the server's base URL, "
                f"like {self.default_endpoint}, with BACKEND_TYPE={self.name}"
            )
        elif status in (502, 504):
            fix = "a proxy in front of the server could not reach it: check that the server behind it is running"
        elif said.mentions("json_schema", "json schema", "guided_json", "structured_output"):
            fix = (
                "the server could not turn the JSON schema into a grammar (the message says why): report the schema "
                "to the grammar provider's plugin, or use the wrapper without -grammar"
            )
        elif said.mentions("grammar"):
            fix = (
                "the server could not parse the GBNF grammar (its log names the rule): report it to the grammar "
                "provider's plugin, or use the wrapper without -grammar"
            )
        return BackendHTTPError(
            f"{self.server()} at {url} answered {status}: {said.message or exc.body[:300]}",
            url=url,
            fix=fix,
            status=status,
            body=exc.body,
        )

    def _overflow(self, said: ServerError, url: str) -> ContextOverflowError:
        window = _number(said.fields.get("n_ctx"))
        prompt_tokens = _number(said.fields.get("n_prompt_tokens"))
        if window is None and (found := _WINDOW.search(said.message)):
            window = int(found.group(1))
        if prompt_tokens is None:
            for pattern in _PROMPT_TOKENS:
                if found := pattern.search(said.message):
                    prompt_tokens = int(found.group(1))
                    break
        return ContextOverflowError(
            f"the prompt does not fit in the context of {self.server()} at {url}: {said.message}",
            url=url,
            fix="memgpt summarises older messages and retries; if this keeps happening, give the server a larger "
            "context (vLLM --max-model-len, llama-server -c) or lower --context-window",
            prompt_tokens=prompt_tokens,
            context_window=window,
        )

    def _unexpected(self, path: str, answer: Any, wanted: str) -> BackendResponseError:
        shown = " ".join(json.dumps(answer)[:300].split())
        return BackendResponseError(
            f"{self.server()} at {self.endpoint}{path} answered JSON without {wanted}: {shown}",
            url=self.endpoint + path,
            fix=f"check that OPENAI_API_BASE (or --endpoint) points at the server and BACKEND_TYPE={self.name} fits it",
        )

    def __repr__(self) -> str:
        model = f" model {self.model}" if self.model else ""
        return f"<{type(self).__name__} {self.name} at {self.endpoint}{model}>"


class OpenAIBackend(OpenAICompatibleBackend):
    """Any server with an OpenAI-compatible ``/v1/completions``; its dialect is found from the server."""

    name: ClassVar[str] = "openai"
    # llama-server's and LocalAI's port, and the one TGI's documented docker command maps.
    default_endpoint: ClassVar[str] = "http://127.0.0.1:8080"
    # What every such server offers (embeddings: /v1/embeddings is part of the API, and a server that does not serve
    # it is told with the fix); an instance states more once it knows its server (see dialect()).
    capabilities: ClassVar[Capabilities] = _GENERIC_CAPABILITIES
    description: ClassVar[str] = (
        "any OpenAI-compatible /v1/completions server (vLLM, TGI, LocalAI, llama.cpp, Ollama); grammars and exact "
        "tokens where the server has them"
    )


class VLLMBackend(OpenAICompatibleBackend):
    """vLLM's OpenAI-compatible server (``vllm serve MODEL``, port 8000).

    Facts from vLLM's API code and documentation:

    - ``GET /v1/models``: ``{"object": "list", "data": [{"id", "object": "model", "owned_by": "vllm", "root",
      "parent", "max_model_len", "permission"}]}``; ``max_model_len`` is the context. LoRA adapters are listed too,
      with ``parent`` set to their base model.
    - ``POST /v1/completions`` takes OpenAI's fields plus vLLM's sampling extras, among them ``ignore_eos``;
      ``model`` names a served model or LoRA adapter. An unknown field is ignored with a warning in the server's
      log, never refused.
    - Structured outputs: ``guided_json`` / ``guided_grammar`` (documented up to 0.10.1), replaced in
      0.10.2 by ``structured_outputs: {"json": ..., "grammar": ...}`` (both accepted in 0.10.2 and 0.11; the
      ``guided_*`` fields were removed in 0.12.0), so ``GET /version`` (``{"version": "0.10.2"}``) picks the field.
      Only the JSON schema is used: every structured-output backend vLLM has had (outlines, lm-format-enforcer,
      xgrammar, guidance) takes one, while the syntax of a grammar depends on the backend (xgrammar's EBNF, Lark
      for outlines and guidance), and core prefers GBNF whenever a backend declares it.
    - ``POST /tokenize`` ``{"model", "prompt", "add_special_tokens": true}`` answers ``{"count", "max_model_len",
      "tokens", "token_strs"}``, counting as ``/v1/completions`` does.
    - Errors: ``{"error": {"message", "type", "param", "code"}}`` (0.10.1 on), ``{"object": "error", "message",
      "type", "param", "code"}`` before. A model that is not served: 404, "The model `NAME` does not exist.",
      type ``NotFoundError``. A prompt too long: 400 ``BadRequestError``, "This model's maximum context length is M
      tokens. However, you requested T tokens (P in the messages, C in the completion). ..." up to 0.10, later
      "... However, your request has P input tokens. ..." or "... you requested C output tokens and your prompt
      contains at least P input tokens ...". ``--api-key`` makes ``/v1`` routes answer 401 ``{"error":
      "Unauthorized"}``.
    - vLLM binds its port before loading the model but accepts connections only afterwards, so while it loads the
      connection is refused; a proxy in front of it answers 502/503 meanwhile.
    """

    name: ClassVar[str] = "vllm"
    default_endpoint: ClassVar[str] = "http://127.0.0.1:8000"
    capabilities: ClassVar[Capabilities] = _VLLM_CAPABILITIES
    description: ClassVar[str] = "vLLM's OpenAI-compatible server: JSON-schema structured outputs, exact tokens"

    def _find_dialect(self) -> str:
        return VLLM

    def wait_until_ready(self, timeout: float = 300.0, progress: Progress | None = None) -> None:
        try:
            super().wait_until_ready(timeout, progress)
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(
                exc.message,
                url=exc.url,
                fix=f"{exc.fix}; vLLM accepts connections only once its model is loaded, so if you have just "
                "started it, wait for 'Application startup complete' in its log",
            ) from None


def _number(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
