"""Prompt wrappers written to MemGPT 0.3's wrapper contract, brought over unchanged and only registered.

Everything here is plain MemGPT style; the one link to memgpt_core is ``hookimpl`` for the registration hook.
"""

from memgpt_core import hookimpl

from .airoboros import AiroborosStyleWrapper
from .chatml import ChatMLStyleWrapper
from .errors import LLMError, LLMJSONParsingError
from .wrapper_base import LLMChatCompletionWrapper
from .zephyr import ZephyrStyleWrapper


def get_available_wrappers():
    """Name -> instance, built the way MemGPT's ``local_llm/utils.py`` builds its table: a "-grammar" twin per family,
    differing only in constructor arguments (for ChatML in none: the proxy blanks its prefixes for grammar names)."""
    return {
        "memgpt-chatml": ChatMLStyleWrapper(),
        "memgpt-chatml-grammar": ChatMLStyleWrapper(),
        "memgpt-airoboros": AiroborosStyleWrapper(),
        "memgpt-airoboros-grammar": AiroborosStyleWrapper(assistant_prefix_extra=None),
        "memgpt-zephyr": ZephyrStyleWrapper(),
        "memgpt-zephyr-grammar": ZephyrStyleWrapper(include_opening_brace_in_prefix=False),
    }


@hookimpl
def register_wrappers(register):
    for name, wrapper in get_available_wrappers().items():
        register(wrapper, name=name)


__all__ = [
    "AiroborosStyleWrapper",
    "ChatMLStyleWrapper",
    "LLMChatCompletionWrapper",
    "LLMError",
    "LLMJSONParsingError",
    "ZephyrStyleWrapper",
    "get_available_wrappers",
    "register_wrappers",
]
