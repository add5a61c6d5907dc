"""The LM Studio backends: ``lmstudio`` (the wrapper's prompt as raw text, JSON-schema structured output on request)
and ``lmstudio-legacy`` (MemGPT's name for LM Studio's chat-completions path).

Facts from LM Studio's documentation and its users' reports:
- ``POST /v1/completions`` takes the prompt as is (no prompt template); ``choices[0].text`` comes back.
- Structured output is documented on ``POST /v1/chat/completions`` only, as ``response_format``
  ``{"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`` (GGUF models use llama.cpp's grammar
  sampler). So a request with a JSON-schema grammar goes there, the wrapper's whole prompt as the one user message
  (what MemGPT's LM Studio backend did by default); the model's chat template is then applied around it.
- Errors come as ``{"error": "text"}`` or ``{"error": {"message": ...}}``, sometimes with status 200:
  "No models loaded. Please load a model in the developer page or use the `lms load` command.";
  "Context length exceeded. Tokens in context: N, Context length: M";
  "Trying to keep the first N tokens when context the overflows. However, the model is loaded with context length
  of only M tokens ..."; "Context size has been exceeded" (MLX). (LM Studio's "'response_format.type' must be
  'json_schema'" answers a client that sends another type; these backends only ever send ``json_schema``.)
- ``GET /api/v1/models`` (LM Studio 0.4+) lists ``loaded_instances[].config.context_length``: the real context.
- With authentication on (0.4+), every request needs ``Authorization: Bearer TOKEN``.
- No end-of-text override is documented, so ``CompletionRequest.ban_eos`` is ignored here.
- Streaming (``"stream": true`` on both routes): server-sent events, ``data: {chunk}`` with ``choices[0].text``
  (completions) or ``choices[0].delta.content`` (chat) pieces, a last chunk with ``finish_reason``, then
  ``data: [DONE]`` (as its users' reports show). ``stream_options.include_usage`` (0.3.18 and later; an older LM
  Studio ignores it and sends no counts) adds a chunk with ``usage``. Since 0.3.18 an error while streaming comes
  "in the format OpenAI clients expect": ``data: {"error": ...}``.

MemGPT 0.3.25's ``lmstudio-legacy`` (``memgpt/local_llm/lmstudio/api.py``, ``api="chat"``) sent the whole finished
prompt as the one user message to ``/v1/chat/completions`` at ``http://localhost:1234`` and read
``choices[0].message.content``; its ``lmstudio`` used ``/v1/completions``. Both treated an error mentioning the
context length as an overflow. ``lmstudio-legacy`` here does the same, with or without a grammar, and reads the
errors and the loaded context as ``lmstudio`` does. (MemGPT also sent ``max_tokens`` equal to the whole context
window and a ``"model": "local model"``; here ``max_tokens`` is the agent's cap and no model is named, so LM Studio
uses the one that is loaded.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from memgpt_core.backend import Backend, Capabilities, Delta, Progress
from memgpt_core.errors import (
    BackendError,
    BackendHTTPError,
    BackendResponseError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
)
from memgpt_core.openai_style import (
    completion_body,
    read_completion,
    read_error,
    read_models,
    read_stream,
    stream_body,
)

if TYPE_CHECKING:
    from memgpt_core.models import Completion, CompletionRequest

_OVERFLOW = re.compile(
    r"context length exceeded|when context the overflows|context size has been exceeded|exceeds context length"
    r"|maximum context length",
    re.IGNORECASE,
)
_CHECK_URL = "check that OPENAI_API_BASE points at LM Studio's server (default http://127.0.0.1:1234)"
_NO_MODEL = re.compile(r"no models? (is )?loaded|model is unloaded", re.IGNORECASE)
_NUMBERS = (
    # (pattern, group of prompt tokens, group of the context length)
    (re.compile(r"Tokens in context: (\d+), Context length: (\d+)", re.IGNORECASE), 1, 2),
    (re.compile(r"keep the first (\d+) tokens.*?context length of only (\d+)", re.IGNORECASE | re.DOTALL), 1, 2),
    (re.compile(r"Input length (\d+) exceeds context length (\d+)", re.IGNORECASE), 1, 2),
)


class LMStudioBackend(Backend):
    """LM Studio's local server (Developer tab, or ``lms server start``)."""

    name: ClassVar[str] = "lmstudio"
    default_endpoint: ClassVar[str] = "http://127.0.0.1:1234"
    # No HTTP tokenizer (token counts exist only in its SDK), so exact_tokenizer stays False. The loaded context is
    # read from /api/v1/models, which LM Studio 0.4 and later serve; older versions answer None.
    capabilities: ClassVar[Capabilities] = Capabilities(
        grammar_formats=frozenset({"json_schema"}), exact_tokenizer=False, server_context=True, streaming=True
    )
    description: ClassVar[str] = "LM Studio local server (/v1/completions; JSON-schema structured output)"

    def _chat(self, request: CompletionRequest) -> bool:
        """Whether this request goes to /v1/chat/completions: only with a grammar (structured output is documented
        there), so that a plain prompt reaches the model untouched."""
        return request.grammar is not None

    def complete(self, request: CompletionRequest) -> Completion:
        path, body = self._body(request)
        url = self.endpoint + path
        answer = self._post(path, body)
        return self._finished(read_completion(answer, url, server="LM Studio", fix=_CHECK_URL), url)

    def stream(self, request: CompletionRequest) -> Iterator[Delta]:
        """The same request as ``complete``, to the same route, streamed with ``stream_options.include_usage``.
        LM Studio's errors, before the stream or in it, are read as ``complete`` reads them (an overflow is
        ContextOverflowError, no model loaded says to load one)."""
        path, body = self._body(request)
        url = self.endpoint + path
        lines = self.request_lines("POST", path, stream_body(body, include_usage=True))
        deltas = read_stream(
            lines, url, server="LM Studio", fix=_CHECK_URL, on_error=lambda said: _explain(said.message, url, None)
        )
        try:
            for delta in deltas:
                if delta.completion is not None:
                    self._finished(delta.completion, url)
                yield delta
        except BackendHTTPError as exc:  # refused before streaming anything
            raise _explain(read_error(exc.body).message or exc.body, url, exc) from None
        finally:
            deltas.close()

    def _body(self, request: CompletionRequest) -> tuple[str, dict[str, Any]]:
        """The route and body of one completion (``stream: false``), for ``complete`` and ``stream`` alike."""
        grammar = self.accepted_grammar(request)
        chat = self._chat(request)
        path = "/v1/chat/completions" if chat else "/v1/completions"
        body = completion_body(request, dialect="lmstudio", chat=chat)
        if grammar is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "function_call", "strict": True, "schema": _schema(grammar.text)},
            }
        return path, body

    @staticmethod
    def _finished(done: Completion, url: str) -> Completion:
        if not done.text:
            raise EmptyCompletionError(
                f"LM Studio at {url} returned an empty completion",
                url=url,
                fix="LM Studio answers with nothing when the prompt is longer than the model's loaded context: "
                "raise the model's context length in LM Studio, or lower --context-window; then run `memgpt doctor`",
            )
        return done

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = self.endpoint + path
        try:
            answer = self.request("POST", path, body)
        except BackendHTTPError as exc:
            raise _explain(read_error(exc.body).message or exc.body, url, exc) from None
        if isinstance(answer, dict) and answer.get("error"):
            # LM Studio sometimes reports a failure (context overflow) with status 200 and an error body.
            raise _explain(read_error(answer).message, url, None)
        return answer

    def context_window(self) -> int | None:
        loaded = self._loaded_instance()
        if loaded is None:
            return None
        length = (loaded.get("config") or {}).get("context_length")
        return int(length) if isinstance(length, int) else None

    def wait_until_ready(self, timeout: float = 300.0, progress: Progress | None = None) -> None:
        """One look at the server before an agent is made, so that nothing answering is said now, not mid-chat."""
        self.request("GET", "/v1/models", timeout=min(self.timeout, 30.0))

    def model_name(self) -> str | None:
        loaded = self._loaded_instance()
        if loaded is not None and loaded.get("id"):
            return str(loaded["id"])
        try:
            served = read_models(self.request("GET", "/v1/models", timeout=30.0))
        except BackendHTTPError:
            return None
        return served[0].id if served else None

    def _loaded_instance(self) -> dict[str, Any] | None:
        """The first loaded model instance from ``GET /api/v1/models`` (LM Studio 0.4+), or None."""
        try:
            body = self.request("GET", "/api/v1/models", timeout=30.0)
        except BackendHTTPError as exc:
            if exc.status in (404, 405):  # an older LM Studio, or another OpenAI-compatible server
                return None
            raise
        for model in body.get("models", []) if isinstance(body, dict) else []:
            for instance in model.get("loaded_instances") or []:
                if isinstance(instance, dict):
                    return instance
        return None


def _schema(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError(
            "the JSON-schema grammar for LM Studio is not valid JSON",
            fix="this is a bug in the grammar provider; report it with the schema",
        ) from None


def _explain(message: str, url: str, http: BackendHTTPError | None) -> BackendError:
    """Turn LM Studio's error text into the error the agent and the user can act on."""
    if _OVERFLOW.search(message):
        prompt_tokens = window = None
        for pattern, p, w in _NUMBERS:
            found = pattern.search(message)
            if found:
                prompt_tokens, window = int(found.group(p)), int(found.group(w))
                break
        return ContextOverflowError(
            f"LM Studio at {url} refused the prompt because it does not fit the model's loaded context: {message}",
            url=url,
            fix="the agent summarises its history and retries; if this repeats, raise the context length in "
            "LM Studio's model load settings, or lower --context-window to what LM Studio loaded",
            prompt_tokens=prompt_tokens,
            context_window=window,
        )
    if _NO_MODEL.search(message):
        return BackendError(
            f"LM Studio at {url} has no model loaded ({message})",
            url=url,
            fix="load a model in LM Studio's Developer tab, or run `lms load <model>`, then try again",
        )
    if http is not None:
        return BackendHTTPError(
            f"LM Studio at {url} answered {http.status}: {message}",
            url=url,
            fix=http.fix,
            status=http.status,
            body=http.body,
        )
    return BackendResponseError(
        f"LM Studio at {url} reported an error: {message}",
        url=url,
        fix="look at LM Studio's server log (Developer tab) for the cause",
    )


class LMStudioLegacyBackend(LMStudioBackend):
    """MemGPT's ``lmstudio-legacy``: every request to LM Studio's ``/v1/chat/completions``, the wrapper's prompt as
    the one user message (LM Studio applies the model's chat template around it)."""

    name: ClassVar[str] = "lmstudio-legacy"
    description: ClassVar[str] = (
        "LM Studio, chat-completions path (/v1/chat/completions, the prompt as one user message; MemGPT's name)"
    )

    def _chat(self, request: CompletionRequest) -> bool:
        return True
