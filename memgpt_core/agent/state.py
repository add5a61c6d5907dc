"""An open agent's state, its settings, and the one way its state changes: a step is saved whole, or not at all."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memgpt_core.agent.events import Event
    from memgpt_core.storage import AgentRecord, MessageRecord, Store


@dataclass
class AgentSettings:
    """How the loop behaves. Every number is a bound, so no turn can run away."""

    max_tokens: int = 512
    """The output cap per step; the real cap is the smaller of this and what the context has left."""
    context_window: int | None = None
    """The window to budget for; None means the server's (or 2048 when the server does not say)."""
    heartbeat_cap: int = 5
    """At most this many steps per user message."""
    free_steps: int = 3
    """After this many steps without a reply, the next step may only call send_message (where a grammar can make it
    so): a small model otherwise edits memory or searches over and over before it answers."""
    memory_writes: int = 1
    """After a user message, at most this many successful memory writes (core_memory_append/replace,
    archival_memory_insert) before the next step may only call send_message. Searches do not count: a search leads
    to a reply anyway. A small model otherwise appends the same fact two to four times before it answers."""
    parse_retries: int = 2
    """An unreadable output is sampled again this many times before the user is told."""
    keep_last: int = 4
    """Messages kept word for word when older ones are summarised."""
    summary_max_tokens: int = 384
    """The summary's output cap, and the budget its grammar is built for (about 150 characters of summary)."""
    reply_heartbeat: bool = True
    """Any function right after a user message gets a heartbeat, so every user message leads to a reply. Searches
    get one regardless of this setting."""
    sampling: dict[str, Any] = field(default_factory=dict)
    thoughts_max_chars: int | None = 120
    """Where a grammar is used, the inner thoughts of a call are at most this long: the "one short sentence" the
    system prompt asks for. A small model otherwise fills whatever room the grammar leaves, mostly by copying its
    persona or its last answer. None leaves them to the output cap."""
    stream: bool = True
    """Ask a backend that streams for the text as it is written (shown as it comes, and needed for forced text
    mid-call); False asks for whole completions."""
    forced_text: bool = True
    """Text the grammar forces is appended to the prompt instead of sampled (``memgpt_core.agent.streaming``)."""


class AgentState:
    """The record, the messages in context and the memory counts, and the transaction every change goes through."""

    store: Store
    record: AgentRecord
    context: list[MessageRecord]
    settings: AgentSettings
    on_event: Callable[[Event], None] | None
    _events: list[Event] | None
    _recall_count: int
    _archival_count: int

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """One atomic write. Inside, change ``self.record`` and write to the store freely: if anything fails (a kill
        included), the store rolls back and ``self.record`` is put back as it was. Update ``self.context`` only after
        the block, once the write has committed."""
        before = copy.deepcopy(self.record)
        try:
            with self.store.transaction():
                yield
        except BaseException:
            self.record = before
            raise

    def _emit(self, event: Event) -> None:
        if self._events is not None:
            self._events.append(event)
        if self.on_event is not None:
            self.on_event(event)
