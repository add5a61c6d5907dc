"""Llama 3 prompt wrappers for memgpt: ``llama3`` and ``llama3-grammar``, the names MemGPT 0.3 used."""

from __future__ import annotations

from memgpt_core import hookimpl


@hookimpl
def register_wrappers(register):
    # Imported here, not at module level: memgpt loads every plugin at start-up and must stay instant.
    from memgpt_wrappers_llama3.wrappers import Llama3GrammarWrapper, Llama3Wrapper

    for cls in (Llama3Wrapper, Llama3GrammarWrapper):
        register(cls)
