"""Every error memgpt raises on purpose: each says what happened, where, and what to do next."""

from __future__ import annotations

from typing import Any


class MemGPTError(Exception):
    """Base class. ``str(err)`` is the sentence for the person at the keyboard, with the fix on its own line."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


class ConfigError(MemGPTError):
    """A setting (flag, variable or config file) is wrong, for example a malformed endpoint URL."""


class PluginError(MemGPTError):
    """A plugin could not be loaded, or registered something it should not have."""


class DuplicateNameError(PluginError):
    """Two distributions registered the same backend, wrapper or grammar name."""


class NotInstalledError(PluginError):
    """Someone asked for a backend, wrapper or grammar by a name that no installed plugin registers."""


class BackendError(MemGPTError):
    """A backend could not complete a request. ``url`` is the endpoint it talked to (never with a secret in it)."""

    def __init__(self, message: str, *, url: str | None = None, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.url = url


class BackendUnavailableError(BackendError):
    """Nothing answered at the URL: the server is not running, or the host or port is wrong."""


class BackendTimeoutError(BackendError):
    """The server accepted the request but did not answer in time."""


class BackendLoadingError(BackendError):
    """The server is up but still loading its model."""


class BackendHTTPError(BackendError):
    """The server answered with an HTTP error status."""

    def __init__(
        self, message: str, *, url: str | None = None, fix: str | None = None, status: int = 0, body: str = ""
    ) -> None:
        super().__init__(message, url=url, fix=fix)
        self.status = status
        self.body = body


class BackendResponseError(BackendError):
    """The server answered 200 with something that is not what its API promises (an HTML page, bad JSON)."""


class EmptyCompletionError(BackendError):
    """The server returned no text at all."""


class ContextOverflowError(BackendError):
    """The prompt does not fit in the server's context window. The agent answers this by summarising."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        fix: str | None = None,
        prompt_tokens: int | None = None,
        context_window: int | None = None,
    ) -> None:
        super().__init__(message, url=url, fix=fix)
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window


class GrammarError(MemGPTError):
    """A function schema uses something a grammar provider cannot express exactly. The agent turns grammar sampling
    off for the step and says why; any other exception from a provider ends the step. Also importable from
    ``memgpt_core.gbnf``, where the built-in generator raises it."""


class ParseError(MemGPTError):
    """The model's output could not be read as a function call. Carries the raw text and the reason."""

    def __init__(self, reason: str, raw: str, *, fix: str | None = None) -> None:
        super().__init__(f"could not read the model's output as a function call: {reason}", fix=fix)
        self.reason = reason
        self.raw = raw


class TruncatedOutputError(ParseError):
    """The model's answer was cut off inside the call (the token limit, or a stream that ended), so no whole call can
    be read. ``name``, ``arguments`` and ``inner_thoughts`` hold what was complete before the cut (``name`` is None
    when the cut came before it), so a caller can retry with more room or continue from there."""

    def __init__(
        self,
        reason: str,
        raw: str,
        *,
        name: str | None = None,
        arguments: dict[str, Any] | None = None,
        inner_thoughts: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(reason, raw, fix=fix)
        self.name = name
        self.arguments = dict(arguments or {})
        self.inner_thoughts = inner_thoughts


class PluginFailedError(PluginError):
    """A plugin raised something unexpected while in use (a backend completing, a wrapper building a prompt or
    reading an answer, a grammar provider building a grammar). The step that used it ended; nothing was saved."""

    @classmethod
    def of(cls, what: str, distribution: str, doing: str, exc: BaseException, *, instead: str) -> PluginFailedError:
        """``what`` ("the faulty backend") from ``distribution`` failed while ``doing``, with ``exc`` in one line;
        the fix names the distribution to report it to and what to use ``instead`` meanwhile."""
        return cls(
            f"{what} from {distribution} failed while {doing}: {exception_line(exc)}; nothing was saved from this step",
            fix=f"report it to the authors of {distribution}; meanwhile {instead}",
        )


def exception_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, cut at ``limit`` characters: how a plugin's own exception is shown."""
    detail = " ".join(str(exc).split())[:limit]
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class AgentInUseError(MemGPTError):
    """Another process has the agent open."""
