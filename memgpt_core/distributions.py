"""memgpt's own plugin distributions: which one brings each backend and wrapper name, and how to install one.

The packages are not on a package index yet. In a checkout, ``make dist`` builds a wheel of memgpt-core and of every
plugin into ``dist/``, and pip installs from that folder (``--find-links dist``) the way it would from an index,
dependencies included: each backend declares memgpt-core and the wrapper distributions its defaults pick. Once the
packages are published, the same command works without ``--find-links dist``.

Names only, for messages: core never imports a plugin. tests/test_install_one_backend.py holds this table against what
the plugins really register.
"""

from __future__ import annotations

PROVIDERS: dict[str, dict[str, str]] = {
    "backends": {
        "koboldcpp": "memgpt-backend-koboldcpp",
        "llamacpp": "memgpt-backend-llamacpp",
        "lmstudio": "memgpt-backend-lmstudio",
        "lmstudio-legacy": "memgpt-backend-lmstudio",
        "ollama": "memgpt-backend-ollama",
        "openai": "memgpt-backend-openai",
        "vllm": "memgpt-backend-openai",
        "webui": "memgpt-backend-webui",
        "webui-legacy": "memgpt-backend-webui",
    },
    "wrappers": {
        "airoboros-l2-70b-2.1": "memgpt-wrappers-airoboros",
        "airoboros-l2-70b-2.1-grammar": "memgpt-wrappers-airoboros",
        "auto": "memgpt-wrappers-auto",
        "auto-grammar": "memgpt-wrappers-auto",
        "chatml": "memgpt-wrappers-chatml",
        "chatml-grammar": "memgpt-wrappers-chatml",
        "dolphin-2.1-mistral-7b": "memgpt-wrappers-chatml",
        "dolphin-2.1-mistral-7b-grammar": "memgpt-wrappers-chatml",
        "llama3": "memgpt-wrappers-llama3",
        "llama3-grammar": "memgpt-wrappers-llama3",
        "zephyr-7B": "memgpt-wrappers-zephyr",
        "zephyr-7B-grammar": "memgpt-wrappers-zephyr",
    },
}
"""``{kind: {name: distribution}}`` for the backends and wrappers of the distributions under plugins/."""


def provider(kind: str, name: str) -> str | None:
    """The distribution of ours that registers ``name`` (kind is ``backends`` or ``wrappers``), or None."""
    return PROVIDERS.get(kind, {}).get(name)


def install_command(*distributions: str) -> str:
    """How to install ``distributions`` into the environment memgpt runs in, from a checkout of memgpt."""
    names = " ".join(distributions)
    return f"in a checkout of memgpt, run `make dist`, then `memgpt plugins install --find-links dist {names}`"
