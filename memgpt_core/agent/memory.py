"""Core memory (the persona and human blocks, each with a character limit) and the prompt text built from it."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from memgpt_core.errors import ConfigError
from memgpt_core.storage import AgentRecord, memgpt_home

BLOCKS = ("persona", "human")
DEFAULT_LIMIT = 2000


class FunctionError(Exception):
    """A function the model called failed; the message goes back to the model as the function's result."""


@cache
def prompt_text(name: str) -> str:
    """A prompt shipped with memgpt (``memgpt_core/agent/prompts/NAME.txt``)."""
    return resources.files("memgpt_core.agent").joinpath("prompts", f"{name}.txt").read_text("utf-8").strip()


def load_block_text(kind: str, value: str | None) -> str:
    """The text for ``--persona``/``--human``: a file path, a name in MEMGPT_HOME/{kind}s/, or a shipped name."""
    value = (value or "default").strip()
    path = Path(value).expanduser()
    if path.is_file():
        return path.read_text("utf-8").strip()
    user_file = memgpt_home() / f"{kind}s" / f"{value}.txt"
    if user_file.is_file():
        return user_file.read_text("utf-8").strip()
    try:
        return prompt_text(f"{kind}_{value}")
    except (FileNotFoundError, OSError):
        raise ConfigError(
            f"no {kind} named {value!r}: it is neither a file nor a saved {kind}",
            fix=f"pass a text file (--{kind} ./my_{kind}.txt), put one in {memgpt_home() / (kind + 's')}, "
            f"or use the shipped one: --{kind} default",
        ) from None


def block(agent: AgentRecord, name: str) -> tuple[str, int]:
    if name not in BLOCKS:
        raise FunctionError(f"there is no core memory block named {name!r}; use 'persona' or 'human'")
    return (agent.persona, agent.persona_limit) if name == "persona" else (agent.human, agent.human_limit)


def _set(agent: AgentRecord, name: str, text: str) -> None:
    if name == "persona":
        agent.persona = text
    else:
        agent.human = text


def append(agent: AgentRecord, name: str, content: str) -> str:
    """Add a line to a block; refuse (with the numbers) if it would pass the limit."""
    current, limit = block(agent, name)
    content = str(content).strip()
    if not content:
        raise FunctionError("content is empty; pass the text to add")
    new = f"{current}\n{content}" if current else content
    if len(new) > limit:
        raise FunctionError(
            f"the {name} block would have {len(new)} characters, over its limit of {limit}; "
            f"shorten it with core_memory_replace, or save the detail with archival_memory_insert"
        )
    _set(agent, name, new)
    return edited("Added to", name, new, limit)


def replace(agent: AgentRecord, name: str, old_content: str, new_content: str) -> str:
    """Replace exact text in a block (an empty new_content deletes it)."""
    current, limit = block(agent, name)
    old_content = str(old_content)
    if not old_content:
        raise FunctionError("old_content is empty; copy the exact text to replace from your core memory")
    if old_content not in current:
        raise FunctionError(f"old_content was not found in {name}; copy it exactly from the {name} block")
    new = current.replace(old_content, str(new_content), 1).strip()
    if len(new) > limit:
        raise FunctionError(f"the {name} block would have {len(new)} characters, over its limit of {limit}")
    _set(agent, name, new)
    return edited("Replaced in", name, new, limit)


def edited(what: str, name: str, text: str, limit: int) -> str:
    """An edit's result: the block's whole new text. The prompt shows core memory as it was at the last summary,
    so this is where the model reads the block as it is now (and copies old_content from, for a replace)."""
    return f"{what} {name}. It now reads ({len(text)}/{limit} characters):\n{text}"


def render(agent: AgentRecord, heading: str = "### Core memory") -> str:
    """Both blocks, each with its size against its limit, under ``heading``."""
    parts = [heading]
    for name in BLOCKS:
        text, limit = block(agent, name)
        parts.append(f'<{name} characters="{len(text)}/{limit}">\n{text}\n</{name}>')
    return "\n".join(parts)
