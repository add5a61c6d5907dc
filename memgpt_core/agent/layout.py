"""The prompt layout: the agent's contract with the server's prompt cache.

Instructions and function documentation first (they never change), then a snapshot of core memory with the memory
counts (retaken only when a summary rewrites the conversation anyway), then the messages in order, and nothing after
the newest one. An edit between summaries returns the block's new text as its function result. So every prefix stays
byte-stable from turn to turn, and a new turn costs the server only its new messages.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from memgpt_core.agent import memory
from memgpt_core.agent.budget import TokenCounter
from memgpt_core.agent.state import AgentState
from memgpt_core.storage import MessageRecord
from memgpt_core.storage.sqlite import now as store_now

if TYPE_CHECKING:
    from memgpt_core.wrapper import Wrapper

SNAPSHOT_KEY = "memory_snapshot"


def event_time(day: str | None = None) -> str:
    """The short time an event carries: HH:MM, with the date only when it is not ``day`` (the snapshot's date).
    A small model copies a long timestamp from every event into its memory and its replies."""
    now = datetime.now(timezone.utc)
    return now.strftime("%H:%M") if now.strftime("%Y-%m-%d") == day else now.strftime("%Y-%m-%d %H:%M")


def full_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def delivered(message: MessageRecord) -> bool:
    """A send_message that worked: its result says nothing the call does not, so the prompt leaves it out (it stays
    stored). A failed one stays in, with its error."""
    return (
        message.role == "function"
        and message.name == "send_message"
        and (message.content or "").startswith('{"status": "OK"')
    )


class PromptLayout(AgentState):
    """Builds the prompt of a step through the wrapper."""

    wrapper: Wrapper
    functions: list[dict[str, Any]]
    counter: TokenCounter
    window: int

    def system_prompt(self) -> str:
        """The instructions, then the core memory snapshot (two system messages in the prompt). The snapshot changes
        only when a summary retakes it."""
        return memory.prompt_text("system") + "\n\n" + self._snapshot()["text"]

    def _snapshot(self) -> dict[str, str]:
        snapshot = self.record.state.get(SNAPSHOT_KEY)
        if not isinstance(snapshot, dict) or not isinstance(snapshot.get("text"), str):
            # A new agent (or one stored before snapshots): taken now, and saved with the next step's transaction.
            snapshot = self.record.state[SNAPSHOT_KEY] = self._take_snapshot()
        return snapshot

    def _take_snapshot(self) -> dict[str, str]:
        taken = full_time()
        text = (
            memory.render(
                self.record,
                heading=f"### Core memory (as of {taken}; edits since then are in the function results below)",
            )
            + "\n"
            + self._counts()
        )
        return {"text": text, "day": taken[:10]}

    def _counts(self) -> str:
        return (
            f"Recall memory: {self._recall_count} messages (conversation_search, conversation_search_date). "
            f"Archival memory: {self._archival_count} passages (archival_memory_search)."
        )

    def _event(self, kind: str, text: str = "", **fields: Any) -> MessageRecord:
        """A user-role event, as MemGPT sends them: a JSON object with a type and the time."""
        payload = {"type": kind, **fields, "time": event_time(self._snapshot()["day"])}
        return MessageRecord(0, store_now(), "user", json.dumps(payload, ensure_ascii=False), text=text)

    def _in_prompt(self, pending: list[MessageRecord]) -> list[MessageRecord]:
        return [m for m in (*self.context, *pending) if not delivered(m)]

    def _chat(self, pending: list[MessageRecord]) -> tuple[list[dict[str, Any]], dict[int, str]]:
        """The messages (see :meth:`messages`), and what the model wrote for each earlier answer, by index."""
        shown = self._in_prompt(pending)
        chat = [
            {"role": "system", "content": memory.prompt_text("system")},
            {"role": "system", "content": self._snapshot()["text"]},
        ]
        written = {len(chat) + i: m.written for i, m in enumerate(shown) if m.written}
        return chat + [m.to_chat() for m in shown], written

    def messages(self, pending: list[MessageRecord]) -> list[dict[str, Any]]:
        """The chat messages of the prompt. Nothing comes after the newest message: whatever changes often would
        otherwise be re-read every turn, and a small model copies the text that sits right before its answer. The
        snapshot is a system message of its own, after the instructions and the function documentation that the
        wrapper joins to the first one: retaking it at a summary leaves those ~1,000 tokens cached."""
        return self._chat(pending)[0]

    def _first_message(self) -> bool:
        return not any(m.role == "assistant" for m in self.context)

    def build_prompt(self, pending: list[MessageRecord]) -> str:
        messages, written = self._chat(pending)
        return self.wrapper.prompt(messages, self.functions, first_message=self._first_message(), written=written)
