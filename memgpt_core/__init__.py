"""memgpt: MemGPT agents on local LLMs, through backend, prompt-wrapper and grammar plugins."""

import pluggy

hookimpl = pluggy.HookimplMarker("memgpt")
"""Decorate your plugin's hook functions with this: ``@memgpt_core.hookimpl``."""

__all__ = ["hookimpl"]
