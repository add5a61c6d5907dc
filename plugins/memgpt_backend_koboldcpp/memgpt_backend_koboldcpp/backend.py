"""The KoboldCpp backend: ``POST /api/v1/generate`` with the fields KoboldCpp really reads.

Facts from KoboldCpp's server code (koboldcpp.py) and its API documentation:
- ``/api/v1/generate`` reads ``prompt``, ``max_length``, ``max_context_length``, ``stop_sequence`` (a list; a ``stop``
  key is ignored there, which is why MemGPT's stop strings never worked), ``grammar`` (GBNF),
  ``grammar_retain_state``, ``trim_stop`` and sampler fields (``temperature``, ``top_p``, ``top_k``, ``rep_pen``,
  ``sampler_seed`` ...). It answers ``{"results": [{"text": ..., "finish_reason": "stop" | "length"}]}``.
- ``POST /api/extra/tokencount`` ``{"prompt"}`` answers ``{"value": N, "ids": [...]}``;
  ``GET /api/extra/true_max_context_length`` answers ``{"value": N}``; ``GET /api/v1/model`` answers
  ``{"result": "koboldcpp/NAME"}`` (``koboldcpp/protected-model`` without the password).
- ``--password`` makes text endpoints answer 401 ``{"detail": {"error": "Unauthorized", "msg": "Authentication key is
  missing or invalid.", "type": "unauthorized"}}`` without ``Authorization: Bearer PASSWORD``.
- Busy: 503 ``{"detail": {"msg": "Server is busy; please try again later.", "type": "service_unavailable"}}``.
  A path it does not serve: 404 with the text "Error: HTTP Server is running, but this endpoint does not exist."
- KoboldCpp never refuses a long prompt: it keeps the end that fits ``max_context_length - max_length``. So the
  backend counts first and raises ContextOverflowError itself. An invalid grammar is ignored with a console warning
  (the generation runs unconstrained), so ``memgpt doctor`` checks that constrained output really is constrained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import (
    BackendHTTPError,
    BackendResponseError,
    EmptyCompletionError,
)

if TYPE_CHECKING:
    from memgpt_core.models import Completion, CompletionRequest

# OpenAI / llama.cpp names for sampler settings, and KoboldCpp's names for the same thing.
_SAMPLER_NAMES = {
    "seed": "sampler_seed",
    "repeat_penalty": "rep_pen",
    "repetition_penalty": "rep_pen",
    "repeat_last_n": "rep_pen_range",
    "typical_p": "typical",
    "tfs_z": "tfs",
}


class KoboldCppBackend(Backend):
    """KoboldCpp's KoboldAI-compatible API (default port 5001)."""

    name: ClassVar[str] = "koboldcpp"
    default_endpoint: ClassVar[str] = "http://127.0.0.1:5001"
    capabilities: ClassVar[Capabilities] = Capabilities(
        grammar_formats=frozenset({"gbnf"}), exact_tokenizer=True, server_context=True
    )
    description: ClassVar[str] = "KoboldCpp (/api/v1/generate; GBNF grammars, exact token counts, real context)"

    def __init__(self, endpoint: str | None = None, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        super().__init__(endpoint, api_key=api_key, timeout=timeout)
        self._server_context: int | None = None  # read once, when a request does not name a context window

    def complete(self, request: CompletionRequest) -> Completion:
        from memgpt_core.models import Completion

        grammar = self.accepted_grammar(request)
        if request.context_window:
            window: int | None = request.context_window
        else:
            if self._server_context is None:
                self._server_context = self.context_window() or 0
            window = self._server_context or None
        prompt_tokens = self.check_prompt_fits(
            request,
            window=window,
            server="KoboldCpp",
            larger_context="start KoboldCpp with a larger --contextsize and raise --context-window to match",
        )
        body: dict[str, Any] = {_SAMPLER_NAMES.get(k, k): v for k, v in request.sampling.items()}
        body.update(
            {
                "prompt": request.prompt,
                "max_length": request.max_tokens,
                "stop_sequence": list(request.stop),
                # Cut the stop string off the answer, as the other servers do.
                "trim_stop": True,
            }
        )
        if window:
            body["max_context_length"] = window
        if grammar is not None:
            body["grammar"] = grammar.text
            # Each call is a fresh function call: grammar state carried over from the last one would reject it.
            body["grammar_retain_state"] = False
        url = self.endpoint + "/api/v1/generate"
        answer = self.request("POST", "/api/v1/generate", body)
        try:
            result = answer["results"][0]
            text = result["text"]
        except (KeyError, IndexError, TypeError):
            raise BackendResponseError(
                f"KoboldCpp at {url} answered without results[0].text: {str(answer)[:200]}",
                url=url,
                fix="check that OPENAI_API_BASE points at KoboldCpp (default http://127.0.0.1:5001)",
            ) from None
        if not isinstance(text, str) or not text:
            raise EmptyCompletionError(
                f"KoboldCpp at {url} returned an empty completion",
                url=url,
                fix="look at KoboldCpp's console for the cause; check that a model is loaded (run `memgpt doctor`)",
            )
        text = _trim_stop(text, request.stop)
        finish = "length" if result.get("finish_reason") == "length" else "stop"
        return Completion(text=text, finish_reason=finish, prompt_tokens=prompt_tokens)

    def count_tokens(self, text: str) -> int | None:
        body = self.request("POST", "/api/extra/tokencount", {"prompt": text}, timeout=min(self.timeout, 60.0))
        value = body.get("value") if isinstance(body, dict) else None
        return int(value) if isinstance(value, int) and value >= 0 else None

    def context_window(self) -> int | None:
        try:
            body = self.request("GET", "/api/extra/true_max_context_length", timeout=min(self.timeout, 30.0))
        except BackendHTTPError as exc:
            if exc.status == 404:  # a KoboldAI-compatible server that is not KoboldCpp
                return None
            raise
        value = body.get("value") if isinstance(body, dict) else None
        return int(value) if isinstance(value, int) and value > 0 else None

    def model_name(self) -> str | None:
        body = self.request("GET", "/api/v1/model", timeout=min(self.timeout, 30.0))
        name = body.get("result") if isinstance(body, dict) else None
        return str(name) if name else None


def _trim_stop(text: str, stops: list[str]) -> str:
    """Cut the answer at the first stop string, for KoboldCpp versions that ignore ``trim_stop``."""
    cut = len(text)
    for stop in stops:
        if stop:
            found = text.find(stop)
            if found != -1:
                cut = min(cut, found)
    return text[:cut]
