"""The ``auto`` and ``auto-grammar`` prompt wrappers: the loaded model's own chat template, as the server reports it."""

from __future__ import annotations

from memgpt_core import hookimpl


@hookimpl
def register_wrappers(register):
    # Imported here, not at module level: memgpt loads every plugin at start-up and must stay instant.
    from memgpt_wrappers_auto.wrappers import AutoGrammarWrapper, AutoWrapper

    register(AutoWrapper)
    register(AutoGrammarWrapper)
