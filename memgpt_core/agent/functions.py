"""The agent's functions: JSON schemas written for a small model, and what each one does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memgpt_core.agent import memory
from memgpt_core.agent.memory import FunctionError

if TYPE_CHECKING:
    from memgpt_core.storage import AgentRecord, SearchPage, Store

PAGE_SIZE = 5
RESULT_CHARS = 300
"""Each search hit is cut to this many characters, so a page of results stays small in the context."""
ARCHIVAL_RESULT_CHARS = 800
"""An archival hit may be a whole passage of a loaded document (at most about 200 tokens, ``memgpt load``'s default
chunk size), so it is cut later than a message: five hits stay near 1,000 tokens."""

_HEARTBEAT = {
    "type": "boolean",
    "description": "true to act again right after this.",
}
_BLOCK = {"type": "string", "enum": ["persona", "human"], "description": "The block."}
# minimum and maximum also bound what a grammar admits: no "page": -1, at most three digits of minutes.
_PAGE = {"type": "integer", "minimum": 1, "description": "Result page, from 1."}


def _schema(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }


SCHEMAS: list[dict[str, Any]] = [
    _schema(
        "send_message",
        "Send a message to the user.",
        # Not blank: a small model otherwise answers "  " and retries it until the step cap.
        {"message": {"type": "string", "pattern": "^\\S", "description": "What the user will read."}},
        ["message"],
    ),
    _schema(
        "pause_heartbeats",
        "Stop timed heartbeats for a while. It does not answer the user.",
        {"minutes": {"type": "integer", "minimum": 1, "maximum": 360, "description": "Minutes, 1 to 360."}},
        ["minutes"],
    ),
    _schema(
        "core_memory_append",
        "Add a line to core memory.",
        {
            "name": _BLOCK,
            "content": {"type": "string", "description": "The text to add."},
            "request_heartbeat": _HEARTBEAT,
        },
        ["name", "content", "request_heartbeat"],
    ),
    _schema(
        "core_memory_replace",
        "Replace exact text in core memory (empty new_content deletes).",
        {
            "name": _BLOCK,
            "old_content": {"type": "string", "description": "Exact text to replace."},
            "new_content": {"type": "string", "description": "Replacement text."},
            "request_heartbeat": _HEARTBEAT,
        },
        ["name", "old_content", "new_content", "request_heartbeat"],
    ),
    _schema(
        "conversation_search",
        "Search past messages by words.",
        {
            "query": {"type": "string", "description": "Words to look for."},
            "page": _PAGE,
            "request_heartbeat": _HEARTBEAT,
        },
        ["query", "request_heartbeat"],
    ),
    _schema(
        "conversation_search_date",
        "List past messages from a range of days.",
        {
            "start_date": {"type": "string", "description": "First day, YYYY-MM-DD."},
            "end_date": {"type": "string", "description": "Last day, YYYY-MM-DD."},
            "page": _PAGE,
            "request_heartbeat": _HEARTBEAT,
        },
        ["start_date", "end_date", "request_heartbeat"],
    ),
    _schema(
        "archival_memory_insert",
        "Save a note to archival memory.",
        {
            "content": {"type": "string", "description": "The note, complete on its own."},
            "request_heartbeat": _HEARTBEAT,
        },
        ["content", "request_heartbeat"],
    ),
    _schema(
        "archival_memory_search",
        "Search archival memory by meaning and words.",
        {
            "query": {"type": "string", "description": "Words to look for."},
            "page": _PAGE,
            "request_heartbeat": _HEARTBEAT,
        },
        ["query", "request_heartbeat"],
    ),
]

SCHEMA_BY_NAME = {schema["name"]: schema for schema in SCHEMAS}


def with_thoughts_bound(schema: dict[str, Any], max_chars: int) -> dict[str, Any]:
    """``schema`` declaring its inner thoughts as a string of at most ``max_chars`` characters: for the grammar
    only (the built-in provider takes a declared bound; the prompt's function list is made from SCHEMAS as they are).
    """
    parameters = dict(schema.get("parameters") or {"type": "object", "properties": {}})
    properties = dict(parameters.get("properties") or {})
    properties["inner_thoughts"] = {"type": "string", "maxLength": max_chars}
    parameters["properties"] = properties
    return {**schema, "parameters": parameters}


SEARCH_FUNCTIONS = frozenset({"conversation_search", "conversation_search_date", "archival_memory_search"})
"""Functions whose result the model must see to be useful: they always get a heartbeat after a user message."""
NO_HEARTBEAT = frozenset({"send_message", "pause_heartbeats"})
MEMORY_WRITES = frozenset({"core_memory_append", "core_memory_replace", "archival_memory_insert"})


@dataclass
class FunctionContext:
    """What a function can touch: the store (inside the step's transaction) and the agent's record."""

    store: Store
    agent: AgentRecord
    now: str


def _page(value: Any) -> int:
    if value is None or value == "":
        return 1
    try:
        page = int(value)
    except (TypeError, ValueError):
        raise FunctionError(f"page must be a whole number like 1, not {value!r}") from None
    if page < 1:
        raise FunctionError("page starts at 1")
    return page


def _format_page(result: SearchPage, what: str, chars: int = RESULT_CHARS) -> str:
    if not result.total:
        return f"No {what} found."
    if not result.items:
        return f"Page {result.page} is past the last page ({result.pages}) of {result.total} {what}."
    count = f"more than {result.total}" if result.more else str(result.total)
    pages = f"{result.pages}+" if result.more else str(result.pages)
    lines = [f"{count} {what}, page {result.page} of {pages}:"]
    for when, text in result.items:
        short = text if len(text) <= chars else text[: chars - 3] + "..."
        lines.append(f"- [{when}] {short}")
    return "\n".join(lines)


def send_message(ctx: FunctionContext, message: str) -> str | None:
    if not str(message).strip():
        raise FunctionError("message is empty; write what the user should read")
    return None


def pause_heartbeats(ctx: FunctionContext, minutes: int) -> str:
    try:
        minutes = int(minutes)
    except (TypeError, ValueError):
        raise FunctionError(f"minutes must be a whole number, not {minutes!r}") from None
    if not 1 <= minutes <= 360:
        raise FunctionError("minutes must be between 1 and 360")
    ctx.agent.state["heartbeats_paused_minutes"] = minutes
    ctx.agent.state["heartbeats_paused_at"] = ctx.now
    return f"Heartbeats paused for {minutes} minutes."


def core_memory_append(ctx: FunctionContext, name: str, content: str) -> str:
    return memory.append(ctx.agent, name, content)


def core_memory_replace(ctx: FunctionContext, name: str, old_content: str, new_content: str) -> str:
    return memory.replace(ctx.agent, name, old_content, new_content)


def conversation_search(ctx: FunctionContext, query: str, page: Any = 1) -> str:
    if not str(query).strip():
        raise FunctionError("query is empty; pass the words to look for")
    result = ctx.store.search_messages(ctx.agent.id, str(query), page=_page(page), page_size=PAGE_SIZE)
    return _format_page(result, "messages")


def conversation_search_date(ctx: FunctionContext, start_date: str, end_date: str, page: Any = 1) -> str:
    try:
        result = ctx.store.search_messages_by_date(
            ctx.agent.id, str(start_date), str(end_date), page=_page(page), page_size=PAGE_SIZE
        )
    except ValueError as exc:
        raise FunctionError(str(exc)) from None
    return _format_page(result, "messages")


def archival_memory_insert(ctx: FunctionContext, content: str) -> str:
    content = str(content).strip()
    if not content:
        raise FunctionError("content is empty; pass the note to save")
    # Embedded in the step's transaction when there is an embedder; if embedding fails the note is saved anyway.
    ctx.store.archival_insert(ctx.agent.id, content, created_at=ctx.now)
    return "Saved to archival memory."


def archival_memory_search(ctx: FunctionContext, query: str, page: Any = 1) -> str:
    if not str(query).strip():
        raise FunctionError("query is empty; pass the words to look for")
    # By meaning and by words together (hybrid search), or by words only when no embedder is available.
    result = ctx.store.archival_search(ctx.agent.id, str(query), page=_page(page), page_size=PAGE_SIZE)
    return _format_page(result, "passages", ARCHIVAL_RESULT_CHARS)


IMPLEMENTATIONS: dict[str, Callable[..., str | None]] = {
    "send_message": send_message,
    "pause_heartbeats": pause_heartbeats,
    "core_memory_append": core_memory_append,
    "core_memory_replace": core_memory_replace,
    "conversation_search": conversation_search,
    "conversation_search_date": conversation_search_date,
    "archival_memory_insert": archival_memory_insert,
    "archival_memory_search": archival_memory_search,
}


def call(ctx: FunctionContext, name: str, arguments: dict[str, Any]) -> str | None:
    """Run one function with the model's arguments. Raises FunctionError with a message the model can act on."""
    schema = SCHEMA_BY_NAME.get(name)
    if schema is None:
        raise FunctionError(f"there is no function named {name!r}; use one of: {', '.join(SCHEMA_BY_NAME)}")
    params = schema["parameters"]
    known = set(params["properties"]) - {"request_heartbeat"}
    missing = [p for p in params["required"] if p != "request_heartbeat" and arguments.get(p) is None]
    if missing:
        raise FunctionError(f"{name} needs {', '.join(missing)}")
    kwargs = {key: value for key, value in arguments.items() if key in known}
    return IMPLEMENTATIONS[name](ctx, **kwargs)
