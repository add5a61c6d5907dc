"""Opening an agent for the CLI: the store, the agent lock, the backend (or the embedded server) and the wrapper."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memgpt_core.agent.agent import Agent, AgentSettings
from memgpt_core.agent.events import Event
from memgpt_core.backend import backend_failed
from memgpt_core.errors import ConfigError, MemGPTError


@dataclass
class SessionOptions:
    """What the user asked for on the command line; None means "as stored for this agent", then the defaults."""

    agent: str | None = None
    persona: str | None = None
    human: str | None = None
    wrapper: str | None = None
    backend: str | None = None
    endpoint: str | None = None
    api_key: str | None = None
    context_window: int | None = None
    model_path: str | None = None
    max_tokens: int | None = None
    create: bool = True


@dataclass
class Session:
    agent: Agent
    created: bool
    server_description: str | None
    notes: list[str]


def new_agent_name(existing: set[str]) -> str:
    base = "agent-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    name, n = base, 2
    while name in existing:
        name, n = f"{base}-{n}", n + 1
    return name


@contextlib.contextmanager
def open_session(
    options: SessionOptions,
    *,
    on_event: Callable[[Event], None] | None = None,
    busy: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Session]:
    """Open (or create) the agent, lock it, connect to the backend, and yield a ready agent; undo all on exit."""
    from memgpt_core import config
    from memgpt_core.agent.memory import load_block_text
    from memgpt_core.selection import choose_wrapper
    from memgpt_core.storage import Store

    notes: list[str] = []
    store = Store()
    try:
        record = store.get_agent(options.agent) if options.agent else None
        if record is None and options.agent and not options.create:
            raise ConfigError(
                f"there is no agent named {options.agent!r}", fix="see `memgpt agents list` for the agents you have"
            )
        if record is not None and (options.persona or options.human):
            notes.append(
                "--persona and --human only set up a new agent; this agent keeps its own core memory "
                "(edit it by asking the agent, or start a new agent)"
            )
        # A new agent's persona and human are read first, so a wrong name fails before a server starts.
        blocks = (
            None
            if record is not None
            else (load_block_text("persona", options.persona), load_block_text("human", options.human))
        )
        with contextlib.ExitStack() as stack:
            if record is not None:  # an agent in use is refused at once, before any server is contacted
                stack.callback(store.lock(record).release)
            stored = record.config if record is not None else {}
            chosen = {
                "backend": options.backend or stored.get("backend"),
                "endpoint": options.endpoint or stored.get("endpoint"),
                "wrapper": options.wrapper or stored.get("wrapper"),
                "context_window": options.context_window or stored.get("context_window"),
                "model_path": options.model_path or stored.get("model_path"),
                "max_tokens": options.max_tokens or stored.get("max_tokens"),
            }
            settings = config.resolve(
                backend=chosen["backend"],
                endpoint=chosen["endpoint"],
                api_key=options.api_key,
                model_path=chosen["model_path"],
                context_window=chosen["context_window"],
            )
            backend, server = stack.enter_context(config.connect(settings))
            wrapper = choose_wrapper(chosen["wrapper"], type(backend), server.wrapper if server else None)
            try:
                backend.wait_until_ready(progress=progress)
            except MemGPTError:
                raise
            except Exception as exc:  # a bug in the backend plugin: one line naming it, not a traceback
                raise backend_failed(backend, "waiting for the server", exc) from exc
            # Remember what the user chose (never the API key) so that `--agent NAME` alone resumes the same way.
            remembered = {k: v for k, v in chosen.items() if v is not None}
            created = record is None
            if record is None:
                # Made only now that the backend answers, so a failed first start leaves no empty agent behind.
                assert blocks is not None
                name = options.agent or new_agent_name({a.name for a, _, _ in store.list_agents()})
                record = store.create_agent(name, persona=blocks[0], human=blocks[1], config=remembered)
                stack.callback(store.lock(record).release)
            elif remembered != {k: v for k, v in stored.items() if k in chosen and v is not None}:
                record.config = {**stored, **remembered}
                store.save_agent(record)
            agent_settings = AgentSettings(context_window=chosen["context_window"])
            if chosen["max_tokens"]:
                agent_settings.max_tokens = int(chosen["max_tokens"])
            agent = Agent(
                store,
                record,
                backend,
                wrapper,
                agent_settings,
                on_event=on_event,
                busy=busy,
            )
            notes.extend(agent.notes)
            yield Session(
                agent=agent,
                created=created,
                server_description=server.description if server else None,
                notes=notes,
            )
    finally:
        store.close()
