"""The two text-generation-webui backends: its OpenAI-compatible API (``webui``) and the old API (``webui-legacy``).

Facts taken from text-generation-webui's own API code (fields, answers, errors):
- ``POST /v1/completions`` takes the OpenAI fields plus its own generation options, among them ``grammar_string``
  (GBNF) and ``truncation_length``; the answer is ``choices[0].text`` with ``finish_reason`` and ``usage``.
- ``POST /v1/internal/token-count`` ``{"text": ...}`` answers ``{"length": N}``; ``GET /v1/internal/model/info``
  answers ``{"model_name": ..., "lora_names": [...]}``, with ``model_name`` ``"None"`` when nothing is loaded.
- ``--api-key`` makes every route answer 401 ``{"detail": "Unauthorized"}`` without ``Authorization: Bearer KEY``.
- The legacy ``POST /api/v1/generate`` takes ``max_new_tokens``, ``stopping_strings``, ``grammar_string`` and
  ``truncation_length`` and answers ``{"results": [{"text": ...}]}``; ``POST /api/v1/token-count`` ``{"prompt"}``
  answers ``{"results": [{"tokens": N}]}``; ``GET /api/v1/model`` answers ``{"result": NAME}``.
- webui never refuses a long prompt: it silently cuts the prompt's start to ``truncation_length - max_new_tokens``
  tokens. So the backend counts first and raises ContextOverflowError itself, instead of letting the agent lose the
  system prompt without knowing.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

from memgpt_core.backend import Backend, Capabilities, Progress
from memgpt_core.errors import (
    BackendError,
    BackendHTTPError,
    BackendResponseError,
    EmptyCompletionError,
)
from memgpt_core.openai_style import read_completion

if TYPE_CHECKING:
    from memgpt_core.models import Completion, CompletionRequest

NO_MODEL = "None"  # what text-generation-webui reports as the model name when nothing is loaded


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
            raise BackendError(
                f"text-generation-webui at {self.endpoint} has no model loaded",
                url=self.endpoint,
                fix="load a model in the web UI's Model tab (or start it with --model NAME), then try again",
            )

    def _empty(self, url: str) -> BackendError:
        model = None
        with contextlib.suppress(BackendError):
            model = self.model_name()
        if model == NO_MODEL:
            return BackendError(
                f"text-generation-webui at {self.endpoint} has no model loaded, so it answered with empty text",
                url=url,
                fix="load a model in the web UI's Model tab (or start it with --model NAME), then try again",
            )
        return EmptyCompletionError(
            f"text-generation-webui at {url} returned an empty completion",
            url=url,
            fix="check the server's console for an error, and that the model and its context length are set "
            "(run `memgpt doctor`)",
        )

    @staticmethod
    def _sampling(request: CompletionRequest) -> dict[str, Any]:
        # Passed through as given, but never allowed to override the fields this backend owns.
        return dict(request.sampling)

    def count_tokens(self, text: str) -> int | None:
        if self._can_count is False:
            return None
        try:
            body = self.request("POST", self._token_path, self._token_body(text), timeout=min(self.timeout, 60.0))
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
    description: ClassVar[str] = "text-generation-webui, OpenAI-compatible API (/v1/completions, --api)"
    _token_path: ClassVar[str] = "/v1/internal/token-count"

    def _token_body(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def complete(self, request: CompletionRequest) -> Completion:
        grammar = self.accepted_grammar(request)
        prompt_tokens = self._guard_context(request)
        body: dict[str, Any] = self._sampling(request)
        body.update({"prompt": request.prompt, "max_tokens": request.max_tokens, "stream": False})
        if request.stop:
            body["stop"] = list(request.stop)
        if request.context_window:
            body["truncation_length"] = request.context_window
        if grammar is not None:
            body["grammar_string"] = grammar.text
        url = self.endpoint + "/v1/completions"
        answer = self.request("POST", "/v1/completions", body)
        done = read_completion(answer, url, server="text-generation-webui", prompt_tokens=prompt_tokens)
        if not done.text:
            raise self._empty(url)
        return done

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
        body: dict[str, Any] = self._sampling(request)
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
        url = self.endpoint + "/api/v1/generate"
        answer = self.request("POST", "/api/v1/generate", body)
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
