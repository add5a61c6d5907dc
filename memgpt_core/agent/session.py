"""Opening an agent for the CLI: the store, the agent lock, the backend (or the embedded server) and the wrapper."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memgpt_core.agent.agent import Agent, AgentSettings
from memgpt_core.agent.events import Event
from memgpt_core.backend import backend_failed
from memgpt_core.errors import BackendUnavailableError, ConfigError, MemGPTError

if TYPE_CHECKING:
    from memgpt_core.config import Choices, Settings


@dataclass
class SessionOptions:
    """What the user asked for on the command line; None means: as the environment, the agent's stored choices or
    the config file say (``config.choose`` decides), then the defaults."""

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
    model_name: str | None = None
    sampling: dict[str, float | int] = field(default_factory=dict)
    stream: bool = True
    """Ask a backend that streams for the text as it is written (``--no-stream``: whole answers)."""
    create: bool = True

    def choices(self) -> Choices:
        """The flags, as the highest level of the settings order."""
        from memgpt_core.config import Choices

        return Choices(
            backend=self.backend,
            endpoint=self.endpoint,
            model_name=self.model_name,
            wrapper=self.wrapper,
            context_window=self.context_window,
            model_path=self.model_path,
            max_tokens=self.max_tokens,
            sampling=dict(self.sampling),
            persona=self.persona,
            human=self.human,
        )


@dataclass
class Session:
    agent: Agent
    created: bool
    server_description: str | None
    notes: list[str]
    settings: Settings | None = None
    """What was chosen, and where each setting came from (``settings.source(name)``)."""


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
    from memgpt_core import config, settings_file
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
        stored = record.config if record is not None else {}
        flags = options.choices()
        chosen = config.choose(flags, stored=stored, file=settings_file.load(), api_key=options.api_key)
        # A new agent's persona and human are read first, so a wrong name fails before a server starts.
        blocks = (
            None if record is not None else (_block_text("persona", chosen, notes), _block_text("human", chosen, notes))
        )
        settings = chosen.backend
        with contextlib.ExitStack() as stack:
            if record is not None:  # an agent in use is refused at once, before any server is contacted
                stack.callback(store.lock(record).release)
            backend, server = stack.enter_context(config.connect(settings))
            embedded = server.wrapper if server else None
            # A wrapper the user named is checked before the server is asked anything. The default waits until the
            # backend knows its server: what that server takes can decide it (the openai backend finds its dialect).
            wrapper = choose_wrapper(chosen.wrapper, type(backend), embedded) if chosen.wrapper else None
            try:
                backend.wait_until_ready(progress=progress)
            except BackendUnavailableError as exc:
                source = settings.sources.get("endpoint")
                if source and not source.startswith("--"):  # say where an address the user did not type came from
                    exc.fix = f"{exc.fix} (the address comes from {source}; `memgpt configure` changes it)"
                raise
            except MemGPTError:
                raise
            except Exception as exc:  # a bug in the backend plugin: one line naming it, not a traceback
                raise backend_failed(backend, "waiting for the server", exc) from exc
            if wrapper is None:
                wrapper = choose_wrapper(None, backend, embedded)
            notes.extend(_settings_notes(chosen, backend, flags))
            # Remember what the user chose by flag (never the API key) so that `--agent NAME` alone resumes the same
            # way. What the environment or the config file says is not copied: changing those later still counts.
            remembered = _remember(stored, flags)
            created = record is None
            if record is None:
                # Made only now that the backend answers, so a failed first start leaves no empty agent behind.
                assert blocks is not None
                name = options.agent or new_agent_name({a.name for a, _, _ in store.list_agents()})
                record = store.create_agent(name, persona=blocks[0], human=blocks[1], config=remembered)
                stack.callback(store.lock(record).release)
            elif remembered != stored:
                record.config = remembered
                store.save_agent(record)
            agent_settings = AgentSettings(
                context_window=settings.context_window, sampling=dict(chosen.sampling), stream=options.stream
            )
            if chosen.max_tokens:
                agent_settings.max_tokens = int(chosen.max_tokens)
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
                settings=chosen,
            )
    finally:
        store.close()


def _remember(stored: dict[str, Any], flags: Choices) -> dict[str, Any]:
    """The agent's stored choices with this session's flags written over them (sampling setting by setting)."""
    given = flags.to_stored()
    remembered = {**stored, **given}
    if "sampling" in given:
        remembered["sampling"] = {**(stored.get("sampling") or {}), **given["sampling"]}
    return remembered


def _block_text(kind: str, chosen: Settings, notes: list[str]) -> str:
    """A new agent's persona or human text, from the flag or the config file's ``[defaults]``.

    MemGPT writes its own defaults (persona ``sam_pov``, human ``basic``) into every config file; memgpt does not
    ship those texts, so unless a saved one has that name, the file's default means memgpt's default.
    """
    from memgpt_core.agent.memory import load_block_text
    from memgpt_core.settings_file import MEMGPT_DEFAULT_HUMAN, MEMGPT_DEFAULT_PERSONA

    value = getattr(chosen, kind)
    if chosen.origin.get(kind) != "config file":
        return load_block_text(kind, value)
    try:
        return load_block_text(kind, value)
    except ConfigError as exc:
        if value == {"persona": MEMGPT_DEFAULT_PERSONA, "human": MEMGPT_DEFAULT_HUMAN}[kind]:
            notes.append(
                f"the config file names MemGPT's default {kind}, {value!r}, which memgpt does not ship: the new "
                f"agent gets memgpt's default {kind} (`memgpt add {kind} --name {value} -f FILE` saves your own)"
            )
            return load_block_text(kind, None)
        raise ConfigError(f"{exc.message} (the name comes from {chosen.source(kind)})", fix=exc.fix) from None


def _settings_notes(chosen: Settings, backend: Any, flags: Choices) -> list[str]:
    """Sentences about settings the server will not use, so none is silently ignored."""
    from memgpt_core import config, sampling

    notes = []
    dialect = sampling.BACKEND_DIALECTS.get(backend.name)
    missing = sampling.unsupported(chosen.sampling, dialect) if dialect else []
    if missing:
        which = "that setting is" if len(missing) == 1 else "those settings are"
        notes.append(
            f"the {backend.name} server has no {', '.join(missing)}: {which} not sent (docs/settings.md lists what "
            "each server takes)"
        )
    if flags.model_name and not config.takes_model_name(type(backend)):
        notes.append(
            f"--model-name {flags.model_name} is not used: the {backend.name} backend talks to the one model its "
            "server has loaded"
        )
    return notes
