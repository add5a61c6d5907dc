"""A fake Ollama server for the tests (Ollama cannot run here), answering as Ollama's API documentation says.

Facts from ollama/ollama's documentation (docs/api.md, docs/api/errors.mdx, docs/api/usage.mdx, docs/openapi.yaml,
docs/faq.mdx, docs/modelfile.mdx) and, where it is silent, from its server code (server/routes.go, llm/):

- ``POST /api/generate``: ``model`` is required (400 ``model is required`` without it; 404 ``model 'NAME' not found``
  for one that is not pulled). ``stream: false`` gives one JSON object: ``model``, ``created_at``, ``response``,
  ``done``, ``done_reason`` (``stop``, ``length``; ``load`` for an empty prompt, which only loads the model;
  ``unload`` for an empty prompt with ``keep_alive: 0``), ``context`` (token ids, left out for a raw request:
  "raw mode will not return a context"), ``total_duration``, ``load_duration``, ``prompt_eval_count``,
  ``prompt_eval_duration``, ``eval_count``, ``eval_duration`` (durations in nanoseconds).
- ``stream`` (default true; docs/api.md, docs/api/streaming.mdx, docs/api/errors.mdx, server/routes.go
  ``streamResponse``): the answer is ``application/x-ndjson``, one object a line: ``model``, ``created_at``,
  ``response`` (a piece of the text), ``done: false``; the last line ``done: true`` with ``done_reason`` and the
  counts and durations of the whole answer, its ``response`` empty ("empty if the response was streamed"). An error
  before any line is written keeps its status and ``{"error"}`` body (``c.JSON``); one after that is one more line,
  ``{"error": "..."}``, which ends the stream with status 200 already sent. The empty-prompt load answers one
  object (``c.JSON``), streamed or not.
- ``raw: true`` applies no template; with ``system``, ``template`` or ``context`` it is refused with 400 ``raw mode
  does not support template, system, or context``. ``think: true`` for a model without the thinking capability is
  400 ``"NAME" does not support thinking``; false is accepted by every model.
- ``format``: a JSON schema the answer matches (structured outputs), or ``"json"``. An Ollama older than 0.5 has a
  string ``format`` field and refuses an object with 400 ``json: cannot unmarshal object into Go struct field
  GenerateRequest.format of type string``. A schema it cannot use: 500 ``invalid JSON schema in format``.
- ``options``: ``num_ctx`` (the context the model is loaded with; a different one reloads it; more than the trained
  length is lowered to it), ``num_predict`` (the token cap: ``done_reason`` ``length``), ``stop`` (the answer ends
  before the stop string, which is not returned), sampling settings. Without ``num_ctx`` the Modelfile's applies,
  else ``OLLAMA_CONTEXT_LENGTH`` or the default, 4096 tokens (docs/faq.mdx).
- A prompt longer than the context is truncated silently (the first ``num_keep`` tokens and the end are kept, the
  rest dropped: "truncating input prompt" in the server's log); only with context shift off is it refused, 400
  ``the prompt is longer than the context length currently available to the model; ...``.
- Errors are ``{"error": "..."}`` with the status: 503 ``server busy, please try again.  maximum pending requests
  exceeded`` (queue full), 500 for a model that will not load (``timed out waiting for llama runner to start -
  progress 0.00 - ``) or fails while running (``an error was encountered while running the model``, docs' example).
  A path the server does not have is gin's 404, ``404 page not found`` as text/plain.
- ``GET /api/tags``: ``{"models": [{"name", "model", "modified_at", "size", "digest", "details"}]}``.
- ``POST /api/show`` ``{"model", "verbose"}``: ``modelfile``, ``parameters`` (one ``name value`` per line),
  ``template``, ``details``, ``model_info`` (arrays longer than 5 are empty unless ``verbose``;
  ``tokenizer.chat_template`` is always removed), ``capabilities``, ``modified_at``; 404 ``model 'NAME' not found``.
  ``template`` is the Go template, or the GGUF's Jinja chat template for a model run on it (Ollama 0.30 and later).
- ``GET /api/ps``: ``{"models": [{"name", "model", "size", "digest", "details", "expires_at", "size_vram",
  "context_length"}]}`` for the loaded models (``context_length`` since Ollama 0.9.7).
- ``GET /api/version``: ``{"version": "..."}``.
- ``POST /api/embed`` ``{"model", "input": str | [str]}`` (docs/api.md "Generate Embeddings"; server/routes.go
  ``EmbedHandler``): ``{"model", "embeddings": [[...]], "total_duration", "load_duration", "prompt_eval_count"}``,
  each vector normalised to length 1; an empty input gives ``"embeddings": []``; an input list with a non-string is
  400 ``invalid input type``; an unknown model 404 ``model 'NAME' not found``. A model that is not an embedding model
  runs on a llama.cpp runner started without ``--embedding`` (llm/llama_server.go), whose refusal Ollama passes on:
  501 ``This server does not support embeddings. Start it with `--embeddings```.

The "model" writes the first of ``answers`` that fits the request's ``format`` (Ollama's structured outputs never
produce anything else), cut by ``num_predict`` and ``stop``. Its tokenizer counts 4 bytes of UTF-8 per token, and a
stream has one token a line. The faults a test may switch on while streaming: ``fail_after`` (the model fails after
that many lines, as Ollama reports it), ``cut_after`` (the stream ends after that many lines without its last one,
as when the server dies), ``garbage_after`` (a line that is not JSON follows them).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import jsonschema
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

BYTES_PER_TOKEN = 4
DEFAULT_CONTEXT = 4096
"""Ollama's default context when nothing sets one (docs/faq.mdx)."""
OVERFLOW = (
    "the prompt is longer than the context length currently available to the model; shorten the prompt, adjust the "
    "context length in settings, or use a model with a longer context length"
)
BUSY = "server busy, please try again.  maximum pending requests exceeded"
LOAD_FAILED = "timed out waiting for llama runner to start - progress 0.00 - "
RUN_FAILED = "an error was encountered while running the model"

LLAMA3_GO_TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)
"""The Go template of docs/api.md's /api/show example."""
CHATML_JINJA = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' "
    "+ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
STORY = "Once upon a time a lighthouse keeper counted the ships that passed each night, and wrote their names down."
"""What the fake model writes when no format constrains it."""
CALL = json.dumps(
    {"function": "send_message", "params": {"inner_thoughts": "A new user; greet them.", "message": "Hello, Chad!"}}
)
"""What it writes under a function-call schema: a whole send_message call."""
YES = json.dumps("yes")
PROBE = json.dumps("zq17")
"""The answer `memgpt doctor`'s grammar probe allows (an enum of two words no model writes unprompted)."""
MISTRAL_JINJA = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] "
    "+ ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)


@dataclass
class FakeModel:
    """One pulled model: what /api/tags, /api/show and /api/ps say about it."""

    name: str
    architecture: str = "llama"
    trained_context: int = 131072
    parameters: str = 'stop                           "<|eot_id|>"'
    template: str = LLAMA3_GO_TEMPLATE
    capabilities: tuple[str, ...] = ("completion",)
    vocabulary: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<|eot_id|>", "Hello", "world", "!")
    bos_id: int = 1
    eos_id: int = 2
    embedding_dim: int = 8
    """The size of its vectors, when ``"embedding"`` is among its capabilities."""

    def modelfile_num_ctx(self) -> int | None:
        found = re.search(r"^num_ctx\s+(\d+)", self.parameters, re.MULTILINE)
        return int(found.group(1)) if found else None


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class FakeOllama:
    """The fake server on a pytest-httpserver; its attributes are Ollama's settings and the faults to show."""

    server: HTTPServer
    models: dict[str, FakeModel] = field(default_factory=dict)
    answers: list[str] = field(default_factory=list)
    version: str = "0.30.1"
    default_context: int = DEFAULT_CONTEXT
    context_shift: bool = True
    busy: bool = False
    load_fails: bool = False
    run_fails: bool = False
    load_seconds: float = 0.0
    prompt_tokens_per_second: float = 500.0
    tokens_per_second: float = 40.0
    fail_after: int | None = None
    cut_after: int | None = None
    garbage_after: int | None = None
    loaded: dict[str, int] = field(default_factory=dict)
    """Loaded model name -> the context it was loaded with."""
    truncated: list[int] = field(default_factory=list)
    """The token counts of prompts this server cut silently (what a real Ollama does without a word)."""
    loads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeOllama:
        routes = (
            ("/api/version", "GET", self._version),
            ("/api/tags", "GET", self._tags),
            ("/api/show", "POST", self._show),
            ("/api/ps", "GET", self._ps),
            ("/api/generate", "POST", self._generate),
            ("/api/embed", "POST", self._embed),
        )
        for path, method, handler in routes:
            self.server.expect_request(path, method=method).respond_with_handler(handler)
        # gin's answer for any other path or method
        self.server.expect_request(re.compile(".*")).respond_with_data(
            "404 page not found", status=404, content_type="text/plain"
        )
        return self

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def add(self, model: FakeModel) -> FakeModel:
        self.models[model.name] = model
        return model

    def sent(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies the server received on ``path``, in order."""
        return [json.loads(req.data) for req, _ in self.server.log if req.path == path and req.data]

    def paths(self) -> list[str]:
        return [req.path for req, _ in self.server.log]

    def settle(self) -> None:
        """Return once every request sent so far is answered and logged: the server answers one request at a time,
        so a request of its own comes back only after a slow one (a timed-out load) is done."""
        import requests

        requests.get(self.url + "/api/version", timeout=30, proxies={"http": "", "https": ""})

    # -- helpers -------------------------------------------------------------------------------------------------

    def _find(self, name: Any) -> FakeModel | None:
        if not isinstance(name, str) or not name:
            return None
        full = name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"
        return self.models.get(full)

    def _at_least(self, version: str) -> bool:
        def parts(text: str) -> tuple[int, ...]:
            return tuple(int(p) for p in text.split("-")[0].split("."))

        return parts(self.version) >= parts(version)

    @staticmethod
    def _json(data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data), status=status, content_type="application/json; charset=utf-8")

    def _error(self, message: str, status: int) -> Response:
        return self._json({"error": message}, status)

    @staticmethod
    def _tokens(text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)

    def _context_for(self, model: FakeModel, options: dict[str, Any]) -> int:
        wanted = options.get("num_ctx") or model.modelfile_num_ctx() or self.default_context
        return min(int(wanted), model.trained_context)

    def _load(self, model: FakeModel, context: int) -> tuple[int, Response | None]:
        """Load ``model`` with ``context`` unless it is loaded so already; the nanoseconds it took, or an error."""
        with self._lock:
            if self.loaded.get(model.name) == context:
                return 0, None
            if self.load_fails:
                return 0, self._error(LOAD_FAILED, 500)
            began = time.monotonic()
            time.sleep(self.load_seconds)
            self.loaded[model.name] = context
            self.loads += 1
            return int((time.monotonic() - began) * 1e9) + 1_000_000, None

    def _write(self, fmt: Any) -> tuple[str | None, str | None]:
        """The model's answer for ``format``, or None and the error Ollama gives."""
        if isinstance(fmt, dict):
            try:
                jsonschema.Draft202012Validator.check_schema(fmt)
            except jsonschema.SchemaError:
                return None, "invalid JSON schema in format"
            for answer in self.answers:
                try:
                    jsonschema.validate(json.loads(answer), fmt)
                except (ValueError, jsonschema.ValidationError):
                    continue
                return answer, None
            return None, f"fake Ollama: no scripted answer matches the schema {json.dumps(fmt)[:200]}"
        if fmt == "json":
            for answer in self.answers:
                try:
                    if isinstance(json.loads(answer), dict):
                        return answer, None
                except ValueError:
                    continue
            return None, "fake Ollama: no scripted answer is a JSON object"
        if not self.answers:
            return None, "fake Ollama: no scripted answers"
        return self.answers[0], None

    # -- endpoints -----------------------------------------------------------------------------------------------

    def _version(self, request: Request) -> Response:
        return self._json({"version": self.version})

    def _tags(self, request: Request) -> Response:
        return self._json({"models": [self._summary(m) for m in sorted(self.models.values(), key=lambda m: m.name)]})

    def _summary(self, model: FakeModel) -> dict[str, Any]:
        return {
            "name": model.name,
            "model": model.name,
            "modified_at": "2025-05-04T17:37:44.706015396-07:00",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": self._details(model),
        }

    @staticmethod
    def _details(model: FakeModel) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": model.architecture,
            "families": [model.architecture],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        }

    def _show(self, request: Request) -> Response:
        body = json.loads(request.data or b"{}")
        name = body.get("model") or body.get("name")
        model = self._find(name)
        if model is None:
            return self._error(f"model '{name}' not found", 404)
        tokens: list[Any] = list(model.vocabulary)
        info: dict[str, Any] = {
            "general.architecture": model.architecture,
            "general.file_type": 15,
            "general.parameter_count": 3212749888,
            f"{model.architecture}.context_length": model.trained_context,
            f"{model.architecture}.embedding_length": 3072,
            "tokenizer.ggml.bos_token_id": model.bos_id,
            "tokenizer.ggml.eos_token_id": model.eos_id,
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.tokens": tokens if body.get("verbose") or len(tokens) <= 5 else [],
        }
        return self._json(
            {
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.name}\n',
                "parameters": model.parameters,
                "template": model.template,
                "details": self._details(model),
                "model_info": info,
                "capabilities": list(model.capabilities),
                "modified_at": "2025-08-14T15:49:43.634137516-07:00",
            }
        )

    def _ps(self, request: Request) -> Response:
        entries = []
        for name, context in sorted(self.loaded.items()):
            entry = {
                **self._summary(self.models[name]),
                "expires_at": "2099-06-04T14:38:31.83753-07:00",
                "size_vram": 5137025024,
            }
            entry.pop("modified_at")
            if self._at_least("0.9.7"):
                entry["context_length"] = context
            entries.append(entry)
        return self._json({"models": entries})

    def _embed(self, request: Request) -> Response:
        body = json.loads(request.data or b"{}")
        name = body.get("model")
        raw = body.get("input")
        if isinstance(raw, list) and not all(isinstance(item, str) for item in raw):
            return self._error("invalid input type", 400)
        texts = [raw] if isinstance(raw, str) and raw else raw if isinstance(raw, list) else []
        model = self._find(name)
        if model is None:
            return self._error(f"model '{name}' not found", 404)
        load_ns, failed = self._load(model, self._context_for(model, body.get("options") or {}))
        if failed is not None:
            return failed
        if not texts:
            return self._json({"model": name, "embeddings": []})
        if "embedding" not in model.capabilities:
            return self._error("This server does not support embeddings. Start it with `--embeddings`", 501)
        vectors = [self.vector(model, text) for text in texts]
        return self._json(
            {
                "model": name,
                "embeddings": vectors,
                "total_duration": load_ns + 1_000_000,
                "load_duration": load_ns,
                "prompt_eval_count": sum(self._tokens(text) for text in texts),
            }
        )

    @staticmethod
    def vector(model: FakeModel, text: str) -> list[float]:
        """The toy embedding: how often each class of character occurs, normalised as Ollama normalises."""
        counts = [0.0] * model.embedding_dim
        for char in text.lower():
            counts[ord(char) % model.embedding_dim] += 1.0
        length = math.sqrt(sum(c * c for c in counts)) or 1.0
        return [c / length for c in counts]

    def _generate(self, request: Request) -> Response:
        began = time.monotonic()
        try:
            body = json.loads(request.data)
        except ValueError as exc:
            return self._error(f"invalid character in request body: {exc}", 400)
        fmt = body.get("format")
        if isinstance(fmt, dict) and not self._at_least("0.5.0"):
            return self._error(
                "json: cannot unmarshal object into Go struct field GenerateRequest.format of type string", 400
            )
        name = body.get("model")
        if not name:
            return self._error("model is required", 400)
        model = self._find(name)
        if model is None:
            return self._error(f"model '{name}' not found", 404)
        if self.busy:
            return self._error(BUSY, 503)
        if body.get("raw") and any(body.get(key) for key in ("template", "system", "context")):
            return self._error("raw mode does not support template, system, or context", 400)
        if body.get("think") is True and "thinking" not in model.capabilities:
            return self._error(f'"{name}" does not support thinking', 400)
        if "completion" not in model.capabilities:
            return self._error(f'"{name}" does not support generate', 400)
        prompt = body.get("prompt") or ""
        options = body.get("options") or {}
        if not prompt and body.get("keep_alive") in (0, "0", "0s"):
            self.loaded.pop(model.name, None)
            unloaded = {"model": name, "created_at": now(), "response": "", "done": True, "done_reason": "unload"}
            return self._json(unloaded)
        context = self._context_for(model, options)
        load_ns, failed = self._load(model, context)
        if failed is not None:
            return failed
        if not prompt:
            return self._json({"model": name, "created_at": now(), "response": "", "done": True, "done_reason": "load"})
        prompt_tokens = self._tokens(prompt)
        if prompt_tokens > context - 1:
            if not self.context_shift:
                return self._error(OVERFLOW, 400)
            self.truncated.append(prompt_tokens)
            prompt_tokens = context - 1
        text, error = self._write(fmt)
        if text is None:
            return self._error(error or "fake Ollama: nothing to say", 500)
        if self.run_fails:
            return self._error(RUN_FAILED, 500)
        reason = "stop"
        for stop in options.get("stop") or []:
            if stop and stop in text:
                text = text[: text.index(stop)]
        cap = options.get("num_predict")
        if isinstance(cap, int) and cap >= 0 and self._tokens(text) > cap:
            text = text.encode("utf-8")[: cap * BYTES_PER_TOKEN].decode("utf-8", errors="ignore")
            reason = "length"
        eval_count = self._tokens(text)
        prompt_ns = int(prompt_tokens / self.prompt_tokens_per_second * 1e9)
        eval_ns = int(eval_count / self.tokens_per_second * 1e9)
        answer: dict[str, Any] = {
            "model": name,
            "created_at": now(),
            "response": text,
            "done": True,
            "done_reason": reason,
        }
        if not body.get("raw"):
            answer["context"] = list(range(1, prompt_tokens + eval_count + 1))
        answer.update(
            total_duration=int((time.monotonic() - began) * 1e9) + load_ns + prompt_ns + eval_ns,
            load_duration=load_ns,
            prompt_eval_count=prompt_tokens,
            prompt_eval_duration=prompt_ns,
            eval_count=eval_count,
            eval_duration=eval_ns,
        )
        if body.get("stream") is False:
            return self._json(answer)
        return Response(self._lines(answer), content_type="application/x-ndjson")

    def _lines(self, answer: dict[str, Any]) -> Iterator[str]:
        """``answer`` as Ollama streams it: a line per piece of ``response`` (four characters), then the last line."""
        text = answer["response"]
        pieces = [text[i : i + BYTES_PER_TOKEN] for i in range(0, len(text), BYTES_PER_TOKEN)]
        for sent, piece in enumerate(pieces):
            if sent == self.fail_after:
                yield json.dumps({"error": RUN_FAILED}) + "\n"
                return
            if sent == self.cut_after:
                return
            if sent == self.garbage_after:
                yield "<html><body>502 Bad Gateway</body></html>\n"
                return
            yield json.dumps({"model": answer["model"], "created_at": now(), "response": piece, "done": False}) + "\n"
        yield json.dumps({**answer, "created_at": now(), "response": ""}) + "\n"
