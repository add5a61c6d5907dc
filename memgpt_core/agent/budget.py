"""The context budget: counting prompt tokens, exactly where the backend can and by a documented estimate otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memgpt_core.errors import ConfigError, MemGPTError

if TYPE_CHECKING:
    from memgpt_core.backend import Backend

DEFAULT_CONTEXT_WINDOW = 2048
"""Used when neither the user nor the server says: the smallest window common local models have."""
BYTES_PER_TOKEN_ESTIMATE = 3
"""The fallback estimate: one token per 3 bytes of UTF-8. Llama- and GPT-style tokenizers average about 4 characters
per token on English, so this over-counts by roughly a quarter: the agent summarises a little early rather than
overflowing the server's context."""
PRESSURE_THRESHOLD = 0.75
"""At this share of the window the model is told to save what matters before old messages are summarised."""


def estimate_tokens(text: str) -> int:
    """The documented estimate: ``ceil(utf8_bytes / 3)``."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN_ESTIMATE)


class TokenCounter:
    """Counts with the backend's own tokenizer when it has one (``capabilities.exact_tokenizer``), else estimates."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.exact = backend.capabilities.exact_tokenizer

    def count(self, text: str) -> int:
        if self.exact:
            from memgpt_core.backend import backend_failed

            try:
                counted = self.backend.count_tokens(text)
            except MemGPTError:
                raise
            except Exception as exc:  # a bug in the backend plugin: one line naming it, not a traceback
                raise backend_failed(self.backend, "counting tokens", exc) from exc
            if counted is not None:
                return counted
        return estimate_tokens(text)


class ContextTooSmallError(ConfigError):
    """The system prompt and memory (with the newest message) cannot fit in the context window at all."""


def too_small(base_tokens: int, message_tokens: int, reserve: int, window: int) -> ContextTooSmallError:
    """The plain explanation for a context that cannot hold even the essentials, naming the settings to change."""
    need = base_tokens + message_tokens + reserve
    if message_tokens > window // 2:
        what = (
            f"the newest message alone takes {message_tokens} tokens, and with the system prompt and core memory "
            f"({base_tokens} tokens) and room for a reply ({reserve}) that is {need}, over the context window of "
            f"{window} tokens"
        )
        fix = "send a shorter message, or use a bigger context: --context-window N with a server started with -c N"
    else:
        what = (
            f"the system prompt and core memory take {base_tokens} tokens; with the newest message ({message_tokens}) "
            f"and room for a reply ({reserve}) that is {need}, over the context window of {window} tokens, even "
            "after summarising every older message"
        )
        fix = (
            "use a bigger context: --context-window N (and start the server with a context of at least N, "
            "llama-server -c N), or shorten core memory"
        )
    return ContextTooSmallError(f"the conversation cannot fit: {what}", fix=fix)
