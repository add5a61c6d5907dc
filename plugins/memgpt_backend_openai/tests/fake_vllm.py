"""A stand-in for vLLM's OpenAI-compatible server (``vllm serve``), which cannot run on this machine (it needs a GPU
or a large CPU build), answering as vLLM's API code does.

Facts it follows (``vllm/entrypoints/openai/``: ``api_server.py``, ``protocol.py``, ``serving_engine.py``,
``serving_completion.py``, ``serving_models.py``, ``serving_tokenization.py``; and docs/features/structured_outputs.md):

- ``GET /version`` answers ``{"version": VLLM_VERSION}``; ``GET /health`` answers 200 with no body.
- ``GET /v1/models``: ``{"object": "list", "data": [ModelCard]}``, a card being ``{"id", "object": "model",
  "created", "owned_by": "vllm", "root", "parent", "max_model_len", "permission": [...]}``; one card per served
  name, LoRA adapters with ``parent`` set to the base model.
- ``POST /v1/completions``: an unknown ``model`` is 404 ``NotFoundError`` "The model `NAME` does not exist.";
  a prompt that does not fit ``max_model_len`` with ``max_tokens`` is 400 ``BadRequestError`` with the wording of
  the version (see ``overflow_message``). Fields vLLM does not know are ignored (logged as a warning, never
  refused): so ``guided_json`` does nothing on 0.12 and later, and ``structured_outputs`` nothing before 0.10.2.
  ``ignore_eos`` generates up to ``max_tokens``. The answer: ``{"id": "cmpl-...", "object": "text_completion",
  "created", "model", "choices": [{"index", "text", "logprobs": null, "finish_reason": "stop"|"length",
  "stop_reason", "prompt_logprobs": null}], "usage": {"prompt_tokens", "total_tokens", "completion_tokens",
  "prompt_tokens_details": null}}``.
- ``"stream": true`` (``serving_completion.py``, ``completion_stream_generator``): ``text/event-stream`` of
  ``data: {chunk}`` events, a chunk being ``{"id", "object": "text_completion", "created", "model", "choices":
  [{"index", "text", "logprobs": null, "finish_reason": null|"stop"|"length", "stop_reason"}]}`` with the new text
  only; with ``stream_options.include_usage`` a last chunk with ``"choices": []`` and ``usage``; then ``data:
  [DONE]``. Errors found before generation (unknown model, prompt too long) are the HTTP answers above; one raised
  while generating is ``data: {"error": {...}}`` (the error object of the version) followed by ``data: [DONE]``.
- ``POST /tokenize`` ``{"model"?, "prompt", "add_special_tokens"}``: ``{"count", "max_model_len", "tokens",
  "token_strs": null}``.
- Errors are ``{"error": {"message", "type", "param", "code"}}`` from 0.10.1 (PR #22099), ``{"object": "error",
  "message", "type", "param", "code"}`` before.
- ``POST /v1/embeddings`` ``{"model"?, "input": str | [str], "encoding_format": "float"}`` for an embedding
  ("pooling") model: ``{"id": "embd-...", "object": "list", "created", "model", "data": [{"index", "object":
  "embedding", "embedding": [...]}], "usage": {"prompt_tokens", "total_tokens", "completion_tokens": 0,
  "prompt_tokens_details": null}}``. For a generative model, older releases keep the route and refuse with 400
  ``BadRequestError`` "The model does not support Embeddings API" (``serving_engine``'s error response), while
  current ones register the pooling routes only when the model's tasks include a pooling task
  (``api_server.build_app``), so the path is FastAPI's 404 ``{"detail": "Not Found"}``.
- With ``--api-key``, paths under ``/v1`` without ``Authorization: Bearer KEY`` answer 401 ``{"error":
  "Unauthorized"}``; ``/version``, ``/health`` and ``/tokenize`` are not guarded.

Faults a test may switch on for a stream: ``stream_error_after`` (that many words, then vLLM's error event, as
when the engine fails mid-generation), ``stream_cut_after`` (that many words, then the body ends: a proxy or server
that died), ``stream_garbage_after`` (that many words, then a data line that is not JSON).

The "model" behind it is a toy: a token is a run of non-space characters (plus one BOS token), and it writes one
fixed sentence. Under a JSON schema it writes the smallest value the schema admits (the first ``anyOf`` branch,
``const`` or first ``enum`` value, required properties only, short strings), as vLLM's constrained decoding
guarantees a schema-valid answer; that is how a test tells a schema that was applied from one that was ignored.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FREE_TEXT = "the quick brown fox jumps over the lazy dog and keeps on running far away"


JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


def _known_types(schema: Any) -> bool:
    """Whether every ``type`` in the schema is a JSON Schema type (what xgrammar's converter checks first)."""
    if isinstance(schema, dict):
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        return all(k in JSON_TYPES for k in kinds) and all(_known_types(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_known_types(v) for v in schema)
    return True


def smallest_instance(schema: dict[str, Any]) -> Any:
    """The smallest JSON value ``schema`` admits, for the kinds of schema memgpt's grammar provider writes."""
    for branch in ("anyOf", "oneOf"):
        if schema.get(branch):
            return smallest_instance(schema[branch][0])
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: smallest_instance(properties.get(name, {})) for name in schema.get("required") or []}
    if kind == "array":
        return [smallest_instance(schema.get("items") or {}) for _ in range(int(schema.get("minItems") or 0))]
    if kind == "string":
        return "ok"[: schema.get("maxLength", 2)]
    return {"integer": 0, "number": 0, "boolean": True, "null": None}.get(str(kind), "ok")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


@dataclass
class FakeVLLM:
    """vLLM on a pytest-httpserver. Change the fields to play another version, model list or state."""

    httpserver: HTTPServer
    version: str = "0.11.0"
    models: list[str] = field(default_factory=lambda: ["Qwen/Qwen2.5-7B-Instruct"])
    adapters: list[str] = field(default_factory=list)
    max_model_len: int = 4096
    api_key: str | None = None
    hide_version: bool = False
    """A gateway in front that forwards only /v1: ``/version`` is then a 404."""
    embedding_dim: int = 0
    """The size of the vectors an embedding model makes; 0: a generative model, which cannot embed."""
    embeddings_route: bool = True
    """For a generative model: True plays an older vLLM (the route refuses), False a current one (no route)."""
    loading_answers: int = 0
    """How many requests a proxy in front answers 503 (an HTML page) before vLLM is up."""
    stream_error_after: int | None = None
    stream_cut_after: int | None = None
    stream_garbage_after: int | None = None
    requests: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.httpserver.expect_request(re.compile(".*")).respond_with_handler(self._answer)

    @property
    def url(self) -> str:
        return self.httpserver.url_for("/").rstrip("/")

    def sent(self, path: str) -> list[dict[str, Any]]:
        return [body for seen, body in self.requests if seen == path]

    # -- the server -------------------------------------------------------------------------------------------

    def _answer(self, request: Request) -> Response:
        body = json.loads(request.data) if request.data else None
        self.requests.append((request.path, body))
        if self.loading_answers > 0:
            self.loading_answers -= 1
            page = "<html><head><title>503 Service Temporarily Unavailable</title></head><body>nginx</body></html>"
            return Response(page, status=503, content_type="text/html")
        if (
            request.path.startswith("/v1")
            and self.api_key
            and (request.headers.get("Authorization") != f"Bearer {self.api_key}")
        ):
            return self._json({"error": "Unauthorized"}, 401)
        route = {
            ("GET", "/version"): lambda: self._json({"version": self.version}) if not self.hide_version else None,
            ("GET", "/health"): lambda: Response(status=200),
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/completions"): lambda: self._complete(body),
            ("POST", "/tokenize"): lambda: self._tokenize(body),
            ("POST", "/v1/embeddings"): lambda: self._embed(body),
        }.get((request.method, request.path))
        answer = route() if route is not None else None
        if answer is None:
            return self._json({"detail": "Not Found"}, 404)  # FastAPI's answer for an unknown route
        return answer

    def _models(self) -> Response:
        created = int(time.time())
        cards = [self._card(name, created) for name in self.models]
        cards += [
            dict(self._card(name, created), root=f"/adapters/{name}", parent=self.models[0]) for name in self.adapters
        ]
        return self._json({"object": "list", "data": cards})

    def _card(self, name: str, created: int) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": self.models[0],
            "parent": None,
            "max_model_len": self.max_model_len,
            "permission": [{"id": "modelperm-1", "object": "model_permission", "allow_sampling": True}],
        }

    def _complete(self, body: dict[str, Any]) -> Response:
        model = body.get("model") or self.models[0]
        if model not in self.models + self.adapters:
            return self._error(f"The model `{model}` does not exist.", "NotFoundError", 404, param="model")
        prompt_tokens = self.count(body["prompt"])
        max_tokens = int(body.get("max_tokens") or 16)
        if prompt_tokens + max_tokens > self.max_model_len:
            return self._error(self.overflow_message(prompt_tokens, max_tokens), "BadRequestError", 400)
        schema = self.applied_schema(body)
        if schema is not None and not _known_types(schema):
            return self._error(
                f"Failed to transform json schema into a grammar: unsupported type in {json.dumps(schema)}",
                "BadRequestError",
                400,
            )
        text, finish = self._generate(body, max_tokens)
        completion_tokens = len(text.split())
        if body.get("stream"):
            usage = {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens": completion_tokens,
            }
            return Response(self._events(body, model, text, finish, usage), content_type="text/event-stream")
        return self._json(
            {
                "id": "cmpl-6b0e3c5d2f1a4e8b9c7d",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "text": text,
                        "logprobs": None,
                        "finish_reason": finish,
                        "stop_reason": None,
                        "prompt_logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "completion_tokens": completion_tokens,
                    "prompt_tokens_details": None,
                },
            }
        )

    def _events(self, body: dict[str, Any], model: str, text: str, finish: str, usage: dict[str, Any]) -> Iterator[str]:
        """The answer as vLLM streams it: one chunk per word (with its leading space), the last with the finish
        reason, the usage chunk when asked for, then ``[DONE]``."""
        head = {
            "id": "cmpl-6b0e3c5d2f1a4e8b9c7d",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        words = re.findall(r"\s*\S+", text) or [""]
        for sent, word in enumerate(words):
            if sent == self.stream_cut_after:
                return
            if sent == self.stream_error_after:
                error = {"message": "CUDA error: an illegal memory access", "type": "InternalServerError", "code": 500}
                if _version(self.version) < (0, 10, 1):
                    error = {"object": "error", **error}  # the flat ErrorResponse, dumped under "error"
                yield "data: " + json.dumps({"error": {**error, "param": None}}) + "\n\n"
                yield "data: [DONE]\n\n"
                return
            if sent == self.stream_garbage_after:
                yield "data: <html><body>upstream hiccup</body></html>\n\n"
                return
            last = sent == len(words) - 1
            choice = {"index": 0, "text": word, "logprobs": None, "finish_reason": finish if last else None,
                      "stop_reason": None}  # fmt: skip
            yield "data: " + json.dumps({**head, "choices": [choice]}) + "\n\n"
        if (body.get("stream_options") or {}).get("include_usage"):
            yield "data: " + json.dumps({**head, "choices": [], "usage": usage}) + "\n\n"
        yield "data: [DONE]\n\n"

    def _generate(self, body: dict[str, Any], max_tokens: int) -> tuple[str, str]:
        schema = self.applied_schema(body)
        if isinstance(schema, dict):
            return json.dumps(smallest_instance(schema)), "stop"
        words = FREE_TEXT.split()
        if body.get("ignore_eos"):
            words = (words * (max_tokens // len(words) + 1))[:max_tokens]
        elif len(words) > 5:
            words = words[:5]  # the toy model "ends its answer" after five words
        for stop in body.get("stop") or []:
            joined = " ".join(words)
            if stop in joined:
                return joined[: joined.index(stop)], "stop"
        return " ".join(words[:max_tokens]), "length" if len(words) >= max_tokens else "stop"

    def applied_schema(self, body: dict[str, Any]) -> Any:
        """The JSON schema this version reads from the request: ``structured_outputs.json`` from 0.10.2,
        ``guided_json`` (or ``response_format``'s) until 0.11; a field the version does not know is ignored."""
        version = _version(self.version)
        if version >= (0, 10, 2) and isinstance(body.get("structured_outputs"), dict):
            return body["structured_outputs"].get("json")
        if version < (0, 12, 0) and body.get("guided_json") is not None:
            return body["guided_json"]
        return None

    def overflow_message(self, prompt_tokens: int, max_tokens: int) -> str:
        head = f"This model's maximum context length is {self.max_model_len} tokens."
        if _version(self.version) < (0, 11, 0):
            return (
                f"{head} However, you requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the "
                f"messages, {max_tokens} in the completion). Please reduce the length of the messages or completion."
            )
        return (
            f"{head} However, you requested {max_tokens} output tokens and your prompt contains at least "
            f"{prompt_tokens} input tokens, for a total of at least {prompt_tokens + max_tokens} tokens. Please "
            "reduce the length of the input prompt or the number of requested output tokens. "
            f"(parameter=input_tokens, value={prompt_tokens})"
        )

    def _tokenize(self, body: dict[str, Any]) -> Response:
        model = body.get("model")
        if model is not None and model not in self.models + self.adapters:
            return self._error(f"The model `{model}` does not exist.", "NotFoundError", 404, param="model")
        count = self.count(body["prompt"])
        return self._json(
            {"count": count, "max_model_len": self.max_model_len, "tokens": list(range(count)), "token_strs": None}
        )

    def _embed(self, body: dict[str, Any]) -> Response | None:
        if not self.embedding_dim:
            if not self.embeddings_route:
                return None  # the 404 of a route that was never registered
            return self._error("The model does not support Embeddings API", "BadRequestError", 400)
        model = body.get("model") or self.models[0]
        if model not in self.models:
            return self._error(f"The model `{model}` does not exist.", "NotFoundError", 404, param="model")
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"index": i, "object": "embedding", "embedding": self.vector(text)} for i, text in enumerate(texts)]
        tokens = sum(self.count(text) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0, "prompt_tokens_details": None}
        answer = {"id": "embd-4f1c2a", "object": "list", "created": int(time.time()), "model": model, "data": data}
        return self._json({**answer, "usage": usage})

    def vector(self, text: str) -> list[float]:
        """The toy embedding model: how often each letter class occurs, spread over ``embedding_dim`` numbers."""
        vector = [0.0] * self.embedding_dim
        for char in text.lower():
            vector[ord(char) % self.embedding_dim] += 1.0
        return vector

    @staticmethod
    def count(text: str) -> int:
        return len(text.split()) + 1  # the BOS token vLLM adds (add_special_tokens defaults to true)

    def _error(self, message: str, kind: str, status: int, *, param: str | None = None) -> Response:
        error = {"message": message, "type": kind, "param": param, "code": status}
        if _version(self.version) >= (0, 10, 1):
            return self._json({"error": error}, status)
        return self._json({"object": "error", **error}, status)

    @staticmethod
    def _json(data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data), status=status, content_type="application/json")
