"""ChatML prompt wrappers for memgpt: ``chatml``, ``dolphin-2.1-mistral-7b`` and their ``-grammar`` variants."""

from __future__ import annotations

from memgpt_core import hookimpl


@hookimpl
def register_wrappers(register):
    # Imported here, not at module level: memgpt loads every plugin at start-up and must stay instant.
    from memgpt_wrappers_chatml.wrappers import (
        ChatMLGrammarWrapper,
        ChatMLWrapper,
        Dolphin21GrammarWrapper,
        Dolphin21Wrapper,
    )

    for cls in (ChatMLWrapper, ChatMLGrammarWrapper, Dolphin21Wrapper, Dolphin21GrammarWrapper):
        register(cls)
