"""The Ollama backend: the wrapper's prompt sent raw to ``POST /api/generate``, for the model the user names.

Facts from Ollama's API documentation (docs/api.md, docs/api/errors.mdx, docs/api/usage.mdx, docs/openapi.yaml,
docs/faq.mdx, docs/modelfile.mdx in ollama/ollama) and, where the documentation is silent, its server code:
- ``/api/generate`` takes ``model`` (required), ``prompt``, ``raw`` (true: no template is applied, so the wrapper's
  prompt reaches the model as written; ``system``, ``template`` and ``context`` are then refused), ``stream`` (false:
  one JSON object), ``format`` (``"json"`` or a JSON schema: structured outputs, Ollama 0.5 and later), ``options``
  (the Modelfile parameters: ``num_ctx``, ``num_predict``, ``stop``, ``temperature``, ``top_k``, ``top_p``,
  ``min_p``, ``typical_p``, ``repeat_penalty``, ``repeat_last_n``, ``presence_penalty``, ``frequency_penalty``,
  ``seed`` ...), ``keep_alive`` (how long the model stays loaded afterwards, default ``5m``) and ``think`` (for
  thinking models: false keeps the whole output in ``response``).
- The answer: ``response``, ``done``, ``done_reason`` (``stop`` or ``length``; ``load``/``unload`` for the calls
  that only load or unload), ``prompt_eval_count`` (tokens in the prompt), ``eval_count`` (tokens generated),
  ``total_duration``, ``load_duration``, ``prompt_eval_duration``, ``eval_duration``, all durations in nanoseconds.
  A raw request gets no ``context`` back. An empty prompt only loads the model.
- Options have no switch that keeps generating past end-of-text (``api.Options`` lists none), so
  ``CompletionRequest.ban_eos`` is ignored here. Unknown option names are ignored by Ollama with a warning in its log.
- Errors are ``{"error": "text"}`` with a status: 404 ``model 'NAME' not found`` for a model that is not pulled,
  400 for a bad request, 503 ``server busy, please try again.  maximum pending requests exceeded`` when its queue
  (``OLLAMA_MAX_QUEUE``) is full, 500 when the model fails to load or run (``timed out waiting for llama runner to
  start ...``, ``invalid JSON schema in format``). An Ollama older than 0.5 refuses a schema in ``format`` with 400
  ``json: cannot unmarshal object into Go struct field GenerateRequest.format of type string``.
- A prompt longer than ``num_ctx`` is cut without a word: Ollama keeps the first ``num_keep`` tokens (4 by default)
  and the end, and drops the rest ("truncating input prompt" in its log). Only with context shift off does it
  answer 400 "the prompt is longer than the context length currently available to the model ...". There is no
  tokenize endpoint, so this backend estimates the prompt (core's documented estimate) and refuses a prompt that
  would not fit, before sending.
- Streaming (``stream`` true, Ollama's default; docs/api.md, docs/api/streaming.mdx, docs/api/errors.mdx,
  server/routes.go ``streamResponse``): ``application/x-ndjson``, one JSON object a line, each with a ``response``
  piece and ``done: false``; the last line has ``done: true``, ``done_reason`` and the counts and durations of the
  whole answer (its ``response`` may be empty or the last piece). An error before anything was written is the usual
  status with ``{"error": "..."}``; after that, one more line ``{"error": "..."}`` ends the stream.
- ``GET /api/tags`` lists the pulled models (``models[].name``); ``POST /api/show`` ``{"model"}`` answers
  ``parameters`` (the Modelfile's, one ``name value`` per line, ``num_ctx`` among them when set), ``template``,
  ``model_info`` (``<architecture>.context_length``: the length the model was trained for; with ``"verbose": true``
  also ``tokenizer.ggml.tokens``) and ``capabilities``. ``model_info`` never carries ``tokenizer.chat_template``
  (the server deletes it). ``template`` is the model's Go template, except since Ollama 0.30 for a model that runs on
  its GGUF's own Jinja chat template, where it is that Jinja text.
- ``GET /api/ps`` lists the loaded models; since Ollama 0.9.7 each has ``context_length``, the context it was loaded
  with (``num_ctx`` from the request or the Modelfile, else ``OLLAMA_CONTEXT_LENGTH`` or Ollama's own default).
- ``GET /api/version`` answers ``{"version": "0.5.1"}``.
- ``POST /api/embed`` ``{"model", "input": [...]}`` (docs/api.md, "Generate Embeddings") answers ``{"model",
  "embeddings": [[...], ...], "total_duration", "load_duration", "prompt_eval_count"}``, one vector per input in
  order, normalised to length 1; ``truncate`` (default true) cuts an input longer than the context, false makes it
  400 ``the input length exceeds the context length``. In its server code (server/routes.go ``EmbedHandler``,
  llm/llama_server.go) any model is scheduled, but the llama.cpp runner is started with ``--embedding`` only for a
  GGUF that declares a pooling type (an embedding model), so for a chat model the runner's refusal comes back as
  501 ``This server does not support embeddings. Start it with `--embeddings``` (its status and message passed
  through); an unknown model is 404 ``model 'NAME' not found``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from memgpt_core.backend import Backend, Capabilities, ChatTemplate, Delta, Progress
from memgpt_core.errors import (
    BackendError,
    BackendHTTPError,
    BackendLoadingError,
    BackendResponseError,
    BackendTimeoutError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
    MemGPTError,
)
from memgpt_core.sampling import to_server

if TYPE_CHECKING:
    from memgpt_core.models import Completion, CompletionRequest, Timings

MODEL_ENV = "MEMGPT_MODEL_NAME"
"""The variable that names the Ollama model (``llama3.2``, ``mistral:7b-instruct-q5_K_M`` ...)."""
EMBEDDING_MODEL_ENV = "MEMGPT_EMBEDDING_MODEL"
EMBEDDING_EXAMPLE = "nomic-embed-text"
"""An embedding model in Ollama's library, for the fixes."""
KEEP_ALIVE = "30m"
"""Sent with every request. An agent waits for its user for longer than Ollama's default of 5 minutes, and loading a
7B model again costs seconds to a minute each time."""
LARGER_CONTEXT = (
    "give Ollama a larger context (OLLAMA_CONTEXT_LENGTH=16384 ollama serve, the Ollama app's context slider, or "
    "PARAMETER num_ctx in a Modelfile)"
)

_NOT_FOUND = re.compile(r"model ['\"].*['\"] not found", re.IGNORECASE)
_OVERFLOW = re.compile(r"longer than the context length|input length exceeds the context length", re.IGNORECASE)
_LOAD_FAILED = re.compile(
    r"timed out waiting for llama|requires more system memory|llama runner process has terminated|"
    r"unable to load model|failed to load model",
    re.IGNORECASE,
)
_OLD_FORMAT = re.compile(r"cannot unmarshal object into .*format", re.IGNORECASE)
_BAD_SCHEMA = re.compile(r"invalid JSON schema|invalid format", re.IGNORECASE)
_API_PATH = re.compile(r"/api/[a-z_]+$", re.IGNORECASE)
# An action of a Go text/template: a field (.Prompt), a variable ($m), or one of its keywords.
_GO_ACTION = re.compile(r"\{\{-?\s*(?:[.$]|(?:if|range|with|end|else|template|define|block)\b)")


class OllamaBackend(Backend):
    """Ollama's native API (default port 11434). The model is named by ``MEMGPT_MODEL_NAME`` (or ``model=``)."""

    name: ClassVar[str] = "ollama"
    default_endpoint: ClassVar[str] = "http://127.0.0.1:11434"
    # No tokenize endpoint, so token counts are estimates. The context comes from /api/ps and /api/show; the chat
    # template from /api/show where Ollama reports a Jinja one (see chat_template). Embeddings from /api/embed, for
    # an embedding model (a chat model is refused with the fix; see embed).
    capabilities: ClassVar[Capabilities] = Capabilities(
        grammar_formats=frozenset({"json_schema"}),
        exact_tokenizer=False,
        server_context=True,
        chat_template=True,
        embeddings=True,
        streaming=True,
    )
    description: ClassVar[str] = "Ollama (/api/generate, raw prompts; JSON-schema structured outputs)"

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
        """The Ollama model every request names; None until the user names one (requests then explain how)."""
        self._show_cache: dict[str, Any] | None = None
        self._window: int | None = None

    @classmethod
    def normalize_endpoint(cls, url: str) -> str:
        """Core's normalisation, plus Ollama's own API paths (``/api/chat``, ``/api/tags`` ...) pasted into the URL."""
        base = super().normalize_endpoint(url)
        parts = urlsplit(base)
        path = _API_PATH.sub("", parts.path)
        if path == parts.path:
            return base
        return super().normalize_endpoint(urlunsplit((parts.scheme, parts.netloc, path, "", "")))

    def request(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        """One call to Ollama (see ``Backend.request``), with Ollama's ``{"error": ...}`` answers told as what they
        mean: an unknown model, a prompt too long, a model that will not load, a full queue (see ``_explain``)."""
        try:
            return super().request(method, path, body, timeout=timeout)
        except BackendHTTPError as exc:
            raise self._explain(exc) from None

    # -- completions ---------------------------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """``POST /api/generate`` with ``raw: true``, the grammar as ``format`` and the limits in ``options``."""
        body, prompt_tokens = self._body(request)
        answer = self.request("POST", "/api/generate", body)
        return self._completion(answer, estimated_prompt=prompt_tokens)

    def stream(self, request: CompletionRequest) -> Iterator[Delta]:
        """The same request as ``complete`` with ``stream: true``: one ``response`` piece a line, the last line
        (``done: true``) read as ``complete`` reads its one answer. A stream that ends without that line, a line that
        is not a JSON object with a ``response`` text, or an ``{"error"}`` line raises a BackendError naming the URL
        (an error Ollama sends mid-stream is read as the same error in an HTTP answer would be)."""
        body, prompt_tokens = self._body(request)
        body["stream"] = True
        url = self.endpoint + "/api/generate"
        lines = self.request_lines("POST", "/api/generate", body)
        pieces: list[str] = []
        last: dict[str, Any] | None = None
        try:
            for line in lines:
                if not line.strip():
                    continue
                data = _line(line, url, self.default_endpoint)
                if "error" in data:
                    raise self._stream_error(data["error"], url)
                text = data.get("response")
                if not isinstance(text, str):
                    raise _not_a_line(line, "without a 'response' text", url, self.default_endpoint)
                if text:
                    pieces.append(text)
                    yield Delta(text=text)
                if data.get("done") is True:
                    last = data
                    break
        except BackendHTTPError as exc:  # refused before streaming anything
            raise self._explain(exc) from None
        finally:
            lines.close()
        if last is None:
            raise BackendResponseError(
                f"Ollama at {url} ended its streamed answer before its last line (done: true), after "
                f"{len(''.join(pieces))} characters: the answer was cut short",
                url=url,
                fix="Ollama may have stopped or crashed mid-answer: look at its log (`ollama serve` output, or "
                "server.log), then try again",
            )
        completion = self._completion({**last, "response": "".join(pieces)}, estimated_prompt=prompt_tokens)
        yield Delta(text="", completion=completion)

    def _body(self, request: CompletionRequest) -> tuple[dict[str, Any], int | None]:
        """The body of one ``/api/generate`` (``stream: false``) for ``complete`` and ``stream``, and the prompt's
        estimated size, after the check that it fits."""
        grammar = self.accepted_grammar(request)
        schema = _schema(grammar.text, grammar.provider) if grammar is not None else None
        model = self.require_model()
        window = request.context_window or self.context_window()
        trained = self.trained_context()
        if window and trained:
            window = min(window, trained)  # Ollama itself lowers a larger num_ctx to this
        prompt_tokens = self._check_fits(request, window)
        # Sampling settings under Ollama's option names (core's table, memgpt_core.sampling; Ollama has no DRY).
        options: dict[str, Any] = to_server(request.sampling, "ollama")
        options["num_predict"] = request.max_tokens
        if window:
            options["num_ctx"] = window
        if request.stop:
            options["stop"] = list(request.stop)
        body: dict[str, Any] = {
            "model": model,
            "prompt": request.prompt,
            "raw": True,
            "stream": False,
            "think": False,
            "keep_alive": KEEP_ALIVE,
            "options": options,
        }
        if schema is not None:
            body["format"] = schema
        return body, prompt_tokens

    def _stream_error(self, error: Any, url: str) -> BackendError | MemGPTError:
        """An ``{"error"}`` line, read as ``_explain`` reads the same error in an HTTP answer; one that means nothing
        more particular is a BackendResponseError (the stream itself was answered 200)."""
        message = error if isinstance(error, str) else json.dumps(error)
        fix = "look at Ollama's log (`ollama serve` output, or server.log) for the cause, then try again"
        said = BackendHTTPError(message, url=url, fix=fix, status=500, body=json.dumps({"error": message}))
        explained = self._explain(said)
        if explained is not said and type(explained) is not BackendHTTPError:
            return explained
        return BackendResponseError(
            f"Ollama at {url} broke off its answer with an error: {message}",
            url=url,
            fix=explained.fix or fix,
        )

    def _check_fits(self, request: CompletionRequest, window: int | None) -> int | None:
        """The prompt's estimated size; ContextOverflowError when it and the answer's room exceed ``window``.

        Ollama would keep only the first few tokens of such a prompt (``num_keep``, 4 by default) and its end,
        silently: the agent's newest messages would survive and its instructions and memory would not. The estimate
        (one token per 3 bytes) over-counts on purpose, as the agent's own budget does, so a prompt the agent
        budgeted never trips it.
        """
        if not window:
            return None
        from memgpt_core.agent.budget import estimate_tokens

        estimate = estimate_tokens(request.prompt)
        if estimate + request.max_tokens > window:
            raise ContextOverflowError(
                f"the prompt is about {estimate} tokens (estimated: Ollama has no tokenizer endpoint) and "
                f"{request.max_tokens} more are reserved for the answer, which is more than the context of {window} "
                f"tokens ({self.endpoint}); Ollama would silently drop part of the prompt",
                url=self.endpoint,
                fix=f"the agent summarises its history and retries; if this repeats, {LARGER_CONTEXT}",
                prompt_tokens=estimate,
                context_window=window,
            )
        return estimate

    def _completion(self, answer: Any, *, estimated_prompt: int | None) -> Completion:
        from memgpt_core.models import Completion

        url = self.endpoint + "/api/generate"
        text = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise BackendResponseError(
                f"the server at {url} answered without a 'response' text: {str(answer)[:200]}",
                url=url,
                fix=f"check that OPENAI_API_BASE (or --endpoint) points at Ollama (default {self.default_endpoint})",
            )
        if not text:
            raise EmptyCompletionError(
                f"Ollama at {url} returned an empty completion from {self.model}",
                url=url,
                fix="the model ended its answer at once: try another wrapper (--model), or look at Ollama's log "
                "(`ollama serve` output, or server.log) for the cause; `memgpt doctor` checks the pair",
            )
        prompt_tokens = _count(answer.get("prompt_eval_count"))
        model = answer.get("model")
        return Completion(
            text=text,
            finish_reason="length" if answer.get("done_reason") == "length" else "stop",
            prompt_tokens=prompt_tokens if prompt_tokens is not None else estimated_prompt,
            completion_tokens=_count(answer.get("eval_count")),
            timings=_timings(answer),
            model=str(model) if model else self.model,
        )

    # -- embeddings ----------------------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        """``POST /api/embed`` ``{"model", "input": [...]}`` with ``model`` (``MEMGPT_EMBEDDING_MODEL``), else the
        backend's model; the answer's ``embeddings`` are the vectors, in the order of ``texts``."""
        name = model or self.model
        if not name:
            names = self.pulled_models()
            raise ConfigError(
                f"the Ollama server at {self.endpoint} makes embeddings with a model that must be named"
                + (f"; it has: {_listing(names)}" if names else ", and it has no models yet"),
                fix=f"pull an embedding model (`ollama pull {EMBEDDING_EXAMPLE}`) and set "
                f"{EMBEDDING_MODEL_ENV}={EMBEDDING_EXAMPLE}",
            )
        url = self.endpoint + "/api/embed"
        try:
            data = Backend.request(self, "POST", "/api/embed", {"model": name, "input": list(texts)})
        except BackendHTTPError as exc:
            raise self._embedding_error(exc, name) from None
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if (
            not isinstance(vectors, list)
            or len(vectors) != len(texts)
            or not all(isinstance(vector, list) and vector for vector in vectors)
        ):
            raise BackendResponseError(
                f"the server at {url} answered without {len(texts)} 'embeddings': {str(data)[:200]}",
                url=url,
                fix=f"check that MEMGPT_EMBEDDING_ENDPOINT points at Ollama (default {self.default_endpoint})",
            )
        return vectors

    def _embedding_error(self, exc: BackendHTTPError, name: str) -> MemGPTError:
        message = _error_text(exc.body)
        if exc.status == 404 and _NOT_FOUND.search(message):
            names = self.pulled_models()
            return ConfigError(
                f"the Ollama server at {self.endpoint} has no model named {name!r} to make embeddings with; "
                + (f"it has: {_listing(names)}" if names else "it has no models yet"),
                fix=f"pull it (`ollama pull {name}`), or set {EMBEDDING_MODEL_ENV} to an embedding model it has",
            )
        if exc.status == 501 or "does not support embeddings" in message.lower():
            return ConfigError(
                f"the Ollama model {name!r} does not make embeddings ({message}): it is not an embedding model",
                fix=f"pull an embedding model (`ollama pull {EMBEDDING_EXAMPLE}`) and set "
                f"{EMBEDDING_MODEL_ENV}={EMBEDDING_EXAMPLE}; or unset MEMGPT_EMBEDDING_ENDPOINT_TYPE to use the "
                "shipped model",
            )
        return self._explain(exc)

    # -- the model -----------------------------------------------------------------------------------------------

    def require_model(self) -> str:
        """The configured model name; without one, a ConfigError that lists the server's models (``/api/tags``)."""
        if self.model:
            return self.model
        names = self.pulled_models()
        if not names:
            raise ConfigError(
                f"the Ollama backend needs a model name, and the Ollama server at {self.endpoint} has no models yet",
                fix=f"pull one (`ollama pull llama3.2`), then set {MODEL_ENV}=llama3.2",
            )
        raise ConfigError(
            f"the Ollama backend needs a model name: Ollama serves any of its models, so memgpt must say which. "
            f"The server at {self.endpoint} has: {_listing(names)}",
            fix=f"set {MODEL_ENV} to one of them, for example `export {MODEL_ENV}={names[0]}`",
        )

    def pulled_models(self) -> list[str]:
        """The names of the models the server has (``GET /api/tags``), sorted."""
        body = self.request("GET", "/api/tags", timeout=min(self.timeout, 30.0))
        models = body.get("models") if isinstance(body, dict) else None
        names = {m.get("name") or m.get("model") for m in models or [] if isinstance(m, dict)}
        return sorted(n for n in names if isinstance(n, str) and n)

    def unknown_model(self) -> ConfigError:
        """The error for a model name the server does not have, with the names it does have."""
        names = self.pulled_models()
        # Compared with and without the tag: "llama3" is closer to "llama3.2" than to "llama3.2:latest".
        bases = {name.removesuffix(":latest"): name for name in names}
        close = difflib.get_close_matches((self.model or "").removesuffix(":latest"), list(bases), n=1, cutoff=0.6)
        meant = f" (did you mean {bases[close[0]]}?)" if close else ""
        have = f"it has: {_listing(names)}" if names else "it has no models yet"
        return ConfigError(
            f"the Ollama server at {self.endpoint} has no model named {self.model!r}{meant}; {have}",
            fix=f"pull it (`ollama pull {self.model}`), or set {MODEL_ENV} to one of the models the server has",
        )

    def model_name(self) -> str | None:
        return self.model

    def show(self) -> dict[str, Any]:
        """``POST /api/show`` for the model, read once per backend (a model does not change while it is in use)."""
        if self._show_cache is None:
            self._show_cache = self._show(verbose=False)
        return self._show_cache

    def _show(self, *, verbose: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.require_model()}
        if verbose:
            body["verbose"] = True
        data = self.request("POST", "/api/show", body, timeout=min(self.timeout, 60.0))
        if not isinstance(data, dict):
            raise BackendResponseError(
                f"the server at {self.endpoint}/api/show answered with {str(data)[:120]} instead of a JSON object",
                url=self.endpoint + "/api/show",
                fix=f"check that OPENAI_API_BASE (or --endpoint) points at Ollama (default {self.default_endpoint})",
            )
        return data

    # -- context -------------------------------------------------------------------------------------------------

    def context_window(self) -> int | None:
        """The context Ollama runs the model with, at most the length it was trained for.

        First the ``context_length`` that ``/api/ps`` reports for the loaded model (Ollama 0.9.7 and later: it
        reflects ``OLLAMA_CONTEXT_LENGTH``, the app's setting and the Modelfile), else the Modelfile's ``num_ctx``
        from ``/api/show``; None when neither says (then pass ``--context-window``).
        """
        if self._window is None:
            running = self.running()
            value = _count(running.get("context_length")) if running else None
            if not value:
                value = _modelfile_num_ctx(self.show().get("parameters"))
            trained = self.trained_context()
            if value and trained:
                value = min(value, trained)
            self._window = value or None
        return self._window

    def trained_context(self) -> int | None:
        """The context length the model was trained for: ``<architecture>.context_length`` in ``model_info``."""
        info = self.show().get("model_info")
        if not isinstance(info, dict):
            return None
        arch = info.get("general.architecture")
        value = _count(info.get(f"{arch}.context_length")) if isinstance(arch, str) else None
        if value is None:
            value = next((_count(v) for k, v in info.items() if k.endswith(".context_length") and _count(v)), None)
        return value or None

    def running(self) -> dict[str, Any] | None:
        """The model's entry in ``GET /api/ps`` while it is loaded, else None (also for an Ollama without it)."""
        try:
            body = self.request("GET", "/api/ps", timeout=min(self.timeout, 30.0))
        except BackendHTTPError as exc:
            if exc.status == 404:  # an Ollama from before /api/ps
                return None
            raise
        wanted = _full_name(self.require_model())
        for entry in body.get("models") or [] if isinstance(body, dict) else []:
            if isinstance(entry, dict) and wanted in (_full_name(entry.get("name")), _full_name(entry.get("model"))):
                return entry
        return None

    # -- readiness -----------------------------------------------------------------------------------------------

    def version(self) -> str | None:
        """Ollama's version (``GET /api/version``): the first thing asked, so a wrong URL is named at once."""
        body = self.request("GET", "/api/version", timeout=min(self.timeout, 30.0))
        value = body.get("version") if isinstance(body, dict) else None
        if not isinstance(value, str):
            raise BackendResponseError(
                f"the server at {self.endpoint}/api/version answered {str(body)[:120]}, not Ollama's version",
                url=self.endpoint + "/api/version",
                fix=f"check that OPENAI_API_BASE (or --endpoint) points at Ollama (default {self.default_endpoint})",
            )
        return value

    def wait_until_ready(self, timeout: float = 300.0, progress: Progress | None = None) -> None:
        """Check the server and the model name, then load the model (Ollama's documented empty-prompt call), saying
        so while it loads, so the first answer does not seem to hang and a model that cannot load is told now."""
        self.version()
        model = self.require_model()
        self.show()
        if progress is not None and self.running() is None:
            progress(f"Ollama at {self.endpoint} is loading {model} into memory")
        try:
            self.request("POST", "/api/generate", {"model": model, "keep_alive": KEEP_ALIVE}, timeout=timeout)
        except BackendTimeoutError:
            raise BackendLoadingError(
                f"Ollama at {self.endpoint} was still loading {model} after {timeout:.0f} s",
                url=self.endpoint + "/api/generate",
                fix="wait for it to finish (`ollama ps` lists the loaded models), then try again; a model too large "
                "for the GPU loads slowly: try a smaller one",
            ) from None
        self._window = None  # loading may have changed the context Ollama reports

    # -- the chat template ---------------------------------------------------------------------------------------

    def chat_template(self) -> ChatTemplate | None:
        """The model's Jinja chat template, where ``/api/show`` reports one in ``template`` (Ollama 0.30 and later,
        for a model that runs on its GGUF's own template); None for Ollama's Go templates, which Jinja cannot read.
        BOS and EOS come from ``model_info`` (``verbose``), asked only when the template uses them."""
        source = self.show().get("template")
        if not isinstance(source, str) or not is_jinja(source):
            return None
        bos = eos = ""
        if "bos_token" in source or "eos_token" in source:
            info = self._show(verbose=True).get("model_info")
            if isinstance(info, dict):
                bos = _token(info, "tokenizer.ggml.bos_token_id")
                eos = _token(info, "tokenizer.ggml.eos_token_id")
        return ChatTemplate(source=source, bos_token=bos, eos_token=eos)

    # -- errors --------------------------------------------------------------------------------------------------

    def _explain(self, exc: BackendHTTPError) -> MemGPTError:
        """Ollama's ``{"error": ...}`` answer as the error the agent and the user can act on."""
        message = _error_text(exc.body)
        url = exc.url or self.endpoint
        if exc.status == 404 and _NOT_FOUND.search(message):
            return self.unknown_model()
        if _OVERFLOW.search(message):
            return ContextOverflowError(
                f"Ollama at {url} refused the prompt: {message}",
                url=url,
                fix=f"the agent summarises its history and retries; if this repeats, {LARGER_CONTEXT}",
                context_window=None,  # the server counted more than the estimate did: let the agent shrink
            )
        if "does not support generate" in message:
            return ConfigError(
                f"the Ollama model {self.model!r} cannot generate text ({message}): it is an embedding model",
                fix=f"set {MODEL_ENV} to a chat or instruct model (`ollama list` shows what you have)",
            )
        if _OLD_FORMAT.search(message):
            fix = "update Ollama: a JSON schema in `format` needs Ollama 0.5 or later; meanwhile use a wrapper "
            fix += "without -grammar (--model airoboros-l2-70b-2.1)"
        elif _BAD_SCHEMA.search(message):
            fix = "Ollama could not use the grammar's JSON schema: report it to the grammar provider's plugin, and "
            fix += "meanwhile use a wrapper without -grammar"
        elif _LOAD_FAILED.search(message):
            fix = "Ollama could not load the model: its log (`ollama serve` output, or server.log) says why; "
            fix += "try a smaller model or a smaller context (--context-window, OLLAMA_CONTEXT_LENGTH)"
        elif exc.status == 503:
            fix = "Ollama's request queue is full (OLLAMA_MAX_QUEUE): another program is using this server; wait "
            fix += "and try again"
        elif exc.status == 404:
            fix = "this URL has no Ollama API at that path: the base URL is the server's address alone, by default "
            fix += f"{self.default_endpoint}; check OPENAI_API_BASE (or --endpoint) and BACKEND_TYPE"
        else:
            return exc
        return BackendHTTPError(exc.message, url=url, fix=fix, status=exc.status, body=exc.body)


def is_jinja(template: str) -> bool:
    """True for a Jinja chat template, False for a Go template: Jinja has ``{% ... %}`` statements, Go has none and
    writes every action in ``{{ }}`` with a field (``.Prompt``), a variable or a keyword (``range``, ``end`` ...)."""
    return "{%" in template and not _GO_ACTION.search(template)


def _schema(text: str, provider: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"the JSON-schema grammar from {provider or 'the grammar provider'} is not valid JSON ({exc}), so it was "
            "not sent to Ollama",
            fix="report it to the grammar provider's plugin, or use a wrapper without -grammar",
        ) from None


def _error_text(body: str) -> str:
    """The message in Ollama's ``{"error": "..."}``; the body itself otherwise."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else body


def _line(line: str, url: str, default_endpoint: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except ValueError:
        raise _not_a_line(line, "that is not JSON", url, default_endpoint) from None
    if not isinstance(data, dict):
        raise _not_a_line(line, "that is not a JSON object", url, default_endpoint)
    return data


def _not_a_line(line: str, what: str, url: str, default_endpoint: str) -> BackendResponseError:
    shown = " ".join(line.split())[:200]
    return BackendResponseError(
        f"the server at {url} streamed a line {what}, where Ollama writes a piece of its answer: {shown}",
        url=url,
        fix=f"check that OPENAI_API_BASE (or --endpoint) points at Ollama (default {default_endpoint})",
    )


def _modelfile_num_ctx(parameters: Any) -> int | None:
    """``num_ctx`` from ``/api/show``'s ``parameters`` text (``num_ctx    4096``, one parameter per line)."""
    if not isinstance(parameters, str):
        return None
    for line in parameters.splitlines():
        name, _, value = line.strip().partition(" ")
        if name == "num_ctx":
            try:
                return int(value.strip().strip('"')) or None
            except ValueError:
                return None
    return None


def _token(info: dict[str, Any], id_key: str) -> str:
    tokens, index = info.get("tokenizer.ggml.tokens"), info.get(id_key)
    if isinstance(tokens, list) and isinstance(index, int) and 0 <= index < len(tokens):
        token = tokens[index]
        return token if isinstance(token, str) else ""
    return ""


def _full_name(name: Any) -> str | None:
    """``llama3.2`` and ``llama3.2:latest`` are one model: Ollama adds the tag ``latest`` when none is given."""
    if not isinstance(name, str) or not name:
        return None
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def _listing(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def _timings(answer: dict[str, Any]) -> Timings | None:
    """Ollama's counts and durations (nanoseconds) as Timings in milliseconds; None when it reports none."""
    from memgpt_core.models import Timings

    values = {
        "prompt_n": _count(answer.get("prompt_eval_count")),
        "prompt_ms": _millis(answer.get("prompt_eval_duration")),
        "predicted_n": _count(answer.get("eval_count")),
        "predicted_ms": _millis(answer.get("eval_duration")),
    }
    if all(v is None for v in values.values()):
        return None
    return Timings(**values)


def _millis(nanoseconds: Any) -> float | None:
    count = _count(nanoseconds)
    return count / 1e6 if count is not None else None
