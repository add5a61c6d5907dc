"""Zephyr prompt wrappers for memgpt: ``zephyr-7B`` and ``zephyr-7B-grammar``, the names MemGPT 0.2 used."""

from __future__ import annotations

from memgpt_core import hookimpl


@hookimpl
def register_wrappers(register):
    # Imported here, not at module level: memgpt loads every plugin at start-up and must stay instant.
    from memgpt_wrappers_zephyr.wrappers import ZephyrGrammarWrapper, ZephyrWrapper

    for cls in (ZephyrWrapper, ZephyrGrammarWrapper):
        register(cls)
