"""Asking the backend: one completion, whole or streamed, with a backend plugin's own crash turned into one line that
names it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from memgpt_core.backend import backend_failed
from memgpt_core.errors import MemGPTError

if TYPE_CHECKING:
    from memgpt_core.backend import Backend, Delta
    from memgpt_core.models import Completion, CompletionRequest


def ask(backend: Backend, request: CompletionRequest) -> Completion:
    """``backend.complete(request)``. A ``MemGPTError`` (the server down, an overflow ...) passes through as the
    backend raised it; anything else is a bug in the backend plugin, told as ``PluginFailedError``."""
    try:
        return backend.complete(request)
    except MemGPTError:
        raise
    except Exception as exc:
        raise backend_failed(backend, "completing", exc) from exc


def ask_streaming(backend: Backend, request: CompletionRequest) -> Iterator[Delta]:
    """``backend.stream(request)``, held to its contract: pieces, then exactly one piece carrying the whole answer.

    Errors as :func:`ask` tells them. A stream that ends without its final piece is the plugin's bug, told as
    ``PluginFailedError``. Closing this generator closes the backend's (and so its connection).
    """
    pieces = backend.stream(request)
    try:
        while True:
            try:
                delta = next(pieces)
            except StopIteration:
                raise backend_failed(
                    backend, "streaming", RuntimeError("its stream ended without the piece carrying the whole answer")
                ) from None
            except MemGPTError:
                raise
            except Exception as exc:
                raise backend_failed(backend, "streaming", exc) from exc
            yield delta
            if delta.completion is not None:
                return
    finally:
        pieces.close()
