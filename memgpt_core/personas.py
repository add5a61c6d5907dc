"""Saved personas and humans: text files in ``$MEMGPT_HOME/personas/`` and ``$MEMGPT_HOME/humans/``, beside the
shipped ones (``memgpt_core/agent/prompts/persona_NAME.txt``).

Files rather than rows in the database: ``--persona NAME`` has always looked for ``$MEMGPT_HOME/personas/NAME.txt``
(``memory.load_block_text``), MemGPT's own ``~/.memgpt/personas/`` and ``humans/`` folders held such files, and a
file can be edited with any editor and backed up with the rest of the folder. A saved name wins over a shipped one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from memgpt_core.errors import ConfigError

KINDS = ("persona", "human")
_NAME = re.compile(r"[\w.\-]+")


@dataclass(frozen=True)
class Block:
    """One persona or human text that ``--persona NAME`` / ``--human NAME`` can use."""

    kind: str
    name: str
    text: str
    origin: str
    """``saved`` (under MEMGPT_HOME) or ``shipped`` (with memgpt)."""
    path: str


def folder(kind: str) -> Path:
    from memgpt_core.storage import memgpt_home

    return memgpt_home() / f"{kind}s"


def _shipped(kind: str) -> list[Block]:
    prompts = resources.files("memgpt_core.agent").joinpath("prompts")
    found = []
    for entry in prompts.iterdir():
        name = entry.name
        if name.startswith(f"{kind}_") and name.endswith(".txt"):
            found.append(Block(kind, name[len(kind) + 1 : -4], entry.read_text("utf-8").strip(), "shipped", str(entry)))
    return found


def _saved(kind: str) -> list[Block]:
    place = folder(kind)
    if not place.is_dir():
        return []
    found = []
    for path in place.glob("*.txt"):
        try:
            text = path.read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            text = f"(cannot be read: {exc})"
        found.append(Block(kind, path.stem, text, "saved", str(path)))
    return found


def list_blocks(kind: str) -> list[Block]:
    """Every persona (or human) a name can pick, sorted by name; a saved one hides a shipped one of its name."""
    saved = _saved(kind)
    names = {b.name for b in saved}
    return sorted(saved + [b for b in _shipped(kind) if b.name not in names], key=lambda b: b.name)


def save_block(kind: str, name: str, text: str, *, replace: bool = False) -> Path:
    """Save ``text`` as the persona (or human) ``name``; ConfigError for a bad name, empty text or a text past the
    core memory limit, and for an existing name unless ``replace``."""
    from memgpt_core.agent.memory import DEFAULT_LIMIT
    from memgpt_core.settings_file import write

    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a valid {kind} name", fix="use letters, digits, '-', '_' or '.', without spaces"
        )
    text = text.strip()
    if not text:
        raise ConfigError(f"the {kind} text for {name!r} is empty", fix="give the text with --text or -f FILE")
    if len(text) > DEFAULT_LIMIT:
        raise ConfigError(
            f"the {kind} text for {name!r} has {len(text)} characters, over the core memory limit of {DEFAULT_LIMIT}",
            fix=f"shorten it to {DEFAULT_LIMIT} characters or fewer (the agent needs room to add what it learns)",
        )
    path = folder(kind) / f"{name}.txt"
    if path.exists() and not replace:
        raise ConfigError(f"a {kind} named {name!r} already exists ({path})", fix="add --yes to replace it")
    write(path, text + "\n")
    return path
