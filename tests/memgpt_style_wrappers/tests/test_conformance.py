"""memgpt's conformance kit accepts these MemGPT-contract classes as they are, each under its registered name."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("memgpt_style_wrappers") is None:  # not pip-installed: use the source next to us
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memgpt_style_wrappers import get_available_wrappers

from memgpt_core.testing import WrapperConformance

WRAPPERS = get_available_wrappers()


class TestChatML(WrapperConformance):
    name = "memgpt-chatml"
    wrapper_instance = WRAPPERS[name]


class TestChatMLGrammar(WrapperConformance):
    name = "memgpt-chatml-grammar"
    wrapper_instance = WRAPPERS[name]


class TestAiroboros(WrapperConformance):
    name = "memgpt-airoboros"
    wrapper_instance = WRAPPERS[name]


class TestAiroborosGrammar(WrapperConformance):
    name = "memgpt-airoboros-grammar"
    wrapper_instance = WRAPPERS[name]


class TestZephyr(WrapperConformance):
    name = "memgpt-zephyr"
    wrapper_instance = WRAPPERS[name]


class TestZephyrGrammar(WrapperConformance):
    name = "memgpt-zephyr-grammar"
    wrapper_instance = WRAPPERS[name]
