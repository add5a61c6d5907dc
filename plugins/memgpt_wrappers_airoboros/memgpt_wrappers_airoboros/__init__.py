"""Airoboros 2.1 prompt wrappers for memgpt: ``airoboros-l2-70b-2.1`` and its ``-grammar`` variant."""

from __future__ import annotations

from memgpt_core import hookimpl


@hookimpl
def register_wrappers(register):
    # Imported here, not at module level: memgpt loads every plugin at start-up and must stay instant.
    from memgpt_wrappers_airoboros.wrappers import Airoboros21GrammarWrapper, Airoboros21Wrapper

    register(Airoboros21Wrapper)
    register(Airoboros21GrammarWrapper)
