"""Every hook has a signature in docs/plugins.md matching hookspecs.py, and a test of a plugin that uses it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from memgpt_core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "plugins.md").read_text()
HOOK_TESTS = (ROOT / "tests" / "test_plugins.py").read_text()


def hook_names() -> list[str]:
    return sorted(name for name, obj in vars(hookspecs).items() if callable(obj) and hasattr(obj, "memgpt_spec"))


def signature_of(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def documented() -> dict[str, str]:
    hooks_section = DOCS.split("\n## Hooks\n", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(0)[4:].strip() for m in re.finditer(r"^### (\w+)\(.*$", hooks_section, re.M)}


def test_the_hooks_are_the_four_of_the_design() -> None:
    assert hook_names() == ["register_backends", "register_commands", "register_grammars", "register_wrappers"]


def test_no_documented_hook_is_missing_from_hookspecs() -> None:
    assert sorted(documented()) == hook_names()


@pytest.mark.parametrize("hook", hook_names())
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    docs = documented()
    assert hook in docs, f"docs/plugins.md has no '### {hook}(...)' entry under ## Hooks"
    assert docs[hook] == signature_of(hook), "the signature in docs/plugins.md differs from hookspecs.py"


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_a_docstring(hook: str) -> None:
    assert (getattr(hookspecs, hook).__doc__ or "").strip()


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_a_test_of_a_plugin_implementing_it(hook: str) -> None:
    assert re.search(rf"^def test_{hook}_hook", HOOK_TESTS, re.M), f"tests/test_plugins.py has no test_{hook}_hook"
