"""The two text-generation-webui backends: its OpenAI-compatible API (``webui``) and the old API (``webui-legacy``).

Facts taken from text-generation-webui's own API code (fields, answers, errors):
- ``POST /v1/completions`` takes the OpenAI fields plus its own generation options, among them ``grammar_string``
  (GBNF) and ``truncation_length``; the answer is ``choices[0].text`` with ``finish_reason`` and ``usage``.
- ``POST /v1/internal/token-count`` ``{"text": ...}`` answers ``{"length": N}``; ``GET /v1/internal/model/info``
  answers ``{"model_name": ..., "lora_names": [...]}``, with ``model_name`` ``"None"`` when nothing is loaded.
- ``--api-key`` makes every route answer 401 ``{"detail": "Unauthorized"}`` without ``Authorization: Bearer KEY``.
- With no model loaded, ``/v1/completions`` and ``/v1/internal/token-count`` fail inside ``encode()`` with
  ``ValueError('No tokenizer is loaded')`` before anything is generated. The FastAPI app (``--api``, November 2023
  on) has no handler for it, so the answer is 500 with Starlette's plain-text "Internal Server Error"; the older
  openai extension (port 5001) answered 500 ``{"error": {"message": "ValueError('No tokenizer is loaded')", ...}}``.
  Either way the backend asks ``/v1/internal/model/info`` and says to load a model. The legacy API instead answers
  200 with empty text (its ``generate_reply`` logs "No model is loaded!" and yields ``''``).
- ``ban_eos_token`` (both APIs) keeps generating past the end-of-text token: what ``CompletionRequest.ban_eos`` asks.
- The legacy ``POST /api/v1/generate`` takes ``max_new_tokens``, ``stopping_strings``, ``grammar_string`` and
  ``truncation_length`` and answers ``{"results": [{"text": ...}]}``; ``POST /api/v1/token-count`` ``{"prompt"}``
  answers ``{"results": [{"tokens": N}]}``; ``GET /api/v1/model`` answers ``{"result": NAME}``.
- Streaming (``"stream": true`` on ``/v1/completions``, ``modules/api/script.py`` and ``completions.py``): server-sent
  events through sse-starlette, ``data: {chunk}`` with ``choices[0].text`` pieces (the first one empty), the last
  with ``finish_reason``; until March 2026 that last chunk also carried ``usage`` and the stream ended there; since
  then ``data: [DONE]`` closes it, and ``usage`` comes (in a chunk with empty ``choices``) only when
  ``stream_options.include_usage`` asks, which older versions ignore as an unknown field. A failure while generating
  is not reported in the stream: the connection ends. The legacy API's streaming was a websocket, so
  ``webui-legacy`` does not stream.
- webui never refuses a long prompt: it silently cuts the prompt's start to ``truncation_length - max_new_tokens``
  tokens. So the backend counts first and raises ContextOverflowError itself, instead of letting the agent lose the
  system prompt without knowing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from memgpt_core.backend import Backend, Capabilities, Delta, Progress
from memgpt_core.errors import (
    BackendError,
    BackendHTTPError,
    BackendResponseError,
    EmptyCompletionError,
)
from memgpt_core.openai_style import completion_body, read_completion, read_error, read_stream, stream_body

if TYPE_CHECKING:
    from memgpt_core.models import Completion, CompletionRequest

NO_MODEL = "None"  # what text-generation-webui reports as the model name when nothing is loaded
_LOAD_A_MODEL = "load a model in the web UI's Model tab (or start it with --model NAME), then try again"


class _WebUIBase(Backend):
    """What both APIs share: the context guard, the no-model diagnosis, token counting."""

    default_endpoint: ClassVar[str] = "http://127.0.0.1:5000"
    capabilities: ClassVar[Capabilities] = Capabilities(grammar_formats=frozenset({"gbnf"}), exact_tokenizer=True)
    _token_path: ClassVar[str]

    def __init__(self, endpoint: str | None = None, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        super().__init__(endpoint, api_key=api_key, timeout=timeout)
        # None: not asked yet; False: the server has no token-count route (an OpenAI-compatible server that is not
        # webui, for example llama-server), so do not ask again.
        self._can_count: bool | None = None

    # -- shared helpers -------------------------------------------------------------------------------------------

    def _guard_context(self, request: CompletionRequest) -> int | None:
        """Count the prompt and refuse it when webui would silently cut its start off. Returns the count, if known."""
        return self.check_prompt_fits(
            request,
            server="text-generation-webui",
            larger_context="raise the context window "
            "(--context-window, and the model's n_ctx / truncation length in text-generation-webui)",
        )

    def wait_until_ready(self, timeout: float = 300.0, progress: Progress | None = None) -> None:
        """One look at the server before an agent is made: nothing answering, or no model loaded, is said now."""
        if self.model_name() == NO_MODEL:
            raise self._no_model(self.endpoint, "has no model loaded")

    def _no_model(self, url: str, what: str) -> BackendError:
        return BackendError(f"text-generation-webui at {self.endpoint} {what}", url=url, fix=_LOAD_A_MODEL)

    def _model_is_missing(self) -> bool:
        """Whether the server reports no loaded model; False when it cannot say (a failure here is not the story)."""
        with contextlib.suppress(BackendError):
            return self.model_name() == NO_MODEL
        return False

    def _empty(self, url: str) -> BackendError:
        return EmptyCompletionError(
            f"text-generation-webui at {url} returned an empty completion",
            url=url,
            fix="check the server's console for an error, and that the model and its context length are set "
            "(run `memgpt doctor`)",
        )

    def _call(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        """One request, with text-generation-webui's failures told as what they mean: its error sentence in the
        message, and a 500 from a server with no model loaded as the "load a model" error."""
        try:
            return self.request(method, path, body, timeout=timeout)
        except BackendHTTPError as exc:
            raise self._http_error(exc, path) from None

    def _http_error(self, exc: BackendHTTPError, path: str) -> BackendError:
        url = self.endpoint + path
        said = read_error(exc.body)
        if exc.status == 500 and (said.mentions("No tokenizer is loaded") or self._model_is_missing()):
            return self._no_model(url, f"has no model loaded, so {path} failed (500)")
        return BackendHTTPError(
            f"text-generation-webui at {url} answered {exc.status}: {said.message}",
            url=url,
            fix=exc.fix,
            status=exc.status,
            body=exc.body,
        )

    def count_tokens(self, text: str) -> int | None:
        if self._can_count is False:
            return None
        try:
            body = self._call("POST", self._token_path, self._token_body(text), timeout=min(self.timeout, 60.0))
        except BackendHTTPError as exc:
            if exc.status in (404, 405):
                self._can_count = False
                return None
            raise
        count = self._read_token_count(body)
        if count is None:
            self._can_count = False
        else:
            self._can_count = True
        return count

    def _token_body(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _read_token_count(body: Any) -> int | None:
        if isinstance(body, dict):
            if isinstance(body.get("length"), int):
                return int(body["length"])
            results = body.get("results")
            if isinstance(results, list) and results and isinstance(results[0], dict):
                tokens = results[0].get("tokens")
                if isinstance(tokens, int):
                    return tokens
        return None


class WebUIBackend(_WebUIBase):
    """text-generation-webui's OpenAI-compatible API (start it with ``--api``): ``/v1/completions``."""

    name: ClassVar[str] = "webui"
    capabilities: ClassVar[Capabilities] = Capabilities(
        grammar_formats=frozenset({"gbnf"}), exact_tokenizer=True, streaming=True
    )
    description: ClassVar[str] = "text-generation-webui, OpenAI-compatible API (/v1/completions, --api)"
    _token_path: ClassVar[str] = "/v1/internal/token-count"

    def _token_body(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def complete(self, request: CompletionRequest) -> Completion:
        body, prompt_tokens = self._body(request)
        url = self.endpoint + "/v1/completions"
        answer = self._call("POST", "/v1/completions", body)
        done = read_completion(answer, url, server="text-generation-webui", prompt_tokens=prompt_tokens)
        if not done.text:
            raise self._empty(url)
        return done

    def stream(self, request: CompletionRequest) -> Iterator[Delta]:
        """The same request as ``complete``, streamed, with ``stream_options.include_usage`` (see the module's notes:
        older versions put ``usage`` in the last chunk anyway). The stream is whole once a finish reason came, since
        only versions from March 2026 send ``[DONE]``. A stream that breaks off from a server with no model loaded is
        told as that."""
        body, prompt_tokens = self._body(request)
        url = self.endpoint + "/v1/completions"
        lines = self.request_lines("POST", "/v1/completions", stream_body(body, include_usage=True))
        deltas = read_stream(lines, url, server="text-generation-webui", prompt_tokens=prompt_tokens, needs_done=False)
        try:
            for delta in deltas:
                if delta.completion is not None and not delta.completion.text:
                    raise self._empty(url)
                yield delta
        except BackendHTTPError as exc:  # refused before streaming anything
            raise self._http_error(exc, "/v1/completions") from None
        except BackendResponseError:
            if self._model_is_missing():
                raise self._no_model(url, "has no model loaded, so its streamed answer broke off") from None
            raise
        finally:
            deltas.close()

    def _body(self, request: CompletionRequest) -> tuple[dict[str, Any], int | None]:
        """The body of one completion (``stream: false``) for ``complete`` and ``stream``, and the prompt's token
        count, after the context guard."""
        grammar = self.accepted_grammar(request)
        prompt_tokens = self._guard_context(request)
        body = completion_body(request, dialect="webui")
        if request.context_window:
            body["truncation_length"] = request.context_window
        if grammar is not None:
            body["grammar_string"] = grammar.text
        if request.ban_eos:
            body["ban_eos_token"] = True
        return body, prompt_tokens

    def model_name(self) -> str | None:
        try:
            body = self.request("GET", "/v1/internal/model/info", timeout=min(self.timeout, 30.0))
        except BackendHTTPError as exc:
            if exc.status == 404:  # an OpenAI-compatible server that is not webui
                return None
            raise
        name = body.get("model_name") if isinstance(body, dict) else None
        return str(name) if name is not None else None


class WebUILegacyBackend(_WebUIBase):
    """text-generation-webui's old blocking API (``--api`` before November 2023): ``/api/v1/generate``."""

    name: ClassVar[str] = "webui-legacy"
    description: ClassVar[str] = "text-generation-webui, legacy blocking API (/api/v1/generate), for old installs"
    _token_path: ClassVar[str] = "/api/v1/token-count"

    def _token_body(self, text: str) -> dict[str, Any]:
        return {"prompt": text}

    def complete(self, request: CompletionRequest) -> Completion:
        from memgpt_core.models import Completion

        grammar = self.accepted_grammar(request)
        prompt_tokens = self._guard_context(request)
        # The legacy API is not OpenAI-shaped: its own field names; the sampling settings under webui's names.
        from memgpt_core.sampling import to_server

        body: dict[str, Any] = to_server(request.sampling, "webui")
        body.update(
            {
                "prompt": request.prompt,
                "max_new_tokens": request.max_tokens,
                "stopping_strings": list(request.stop),
            }
        )
        if request.context_window:
            body["truncation_length"] = request.context_window
        if grammar is not None:
            body["grammar_string"] = grammar.text
        if request.ban_eos:
            body["ban_eos_token"] = True
        url = self.endpoint + "/api/v1/generate"
        answer = self._call("POST", "/api/v1/generate", body)
        try:
            text = answer["results"][0]["text"]
        except (KeyError, IndexError, TypeError):
            raise BackendResponseError(
                f"text-generation-webui at {url} answered without results[0].text: {str(answer)[:200]}",
                url=url,
                fix="this does not look like the legacy API; for a current text-generation-webui use "
                "BACKEND_TYPE=webui instead of webui-legacy",
            ) from None
        if not isinstance(text, str) or not text:
            # The legacy API answers an empty 200 when no model is loaded (its generate_reply yields '').
            if self._model_is_missing():
                raise self._no_model(url, "has no model loaded, so it answered with empty text")
            raise self._empty(url)
        # The legacy API does not say why it stopped: count the answer, a full budget means the cap cut it off.
        completion_tokens = self.count_tokens(text)
        finish = "length" if completion_tokens is not None and completion_tokens >= request.max_tokens else "stop"
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def model_name(self) -> str | None:
        body = self.request("GET", "/api/v1/model", timeout=min(self.timeout, 30.0))
        name = body.get("result") if isinstance(body, dict) else None
        return str(name) if name is not None else None
