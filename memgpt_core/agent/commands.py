"""The edits behind the slash commands: /memory, /dump, /pop, /retry, /rethink, /rewrite, /summarize."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memgpt_core.agent import memory
from memgpt_core.agent.summary import Summaries
from memgpt_core.errors import MemGPTError

if TYPE_CHECKING:
    from memgpt_core.agent.events import TurnResult
    from memgpt_core.storage import MessageRecord


class EditCommands(Summaries):
    """What a person at the keyboard can do to the agent's context besides talking to it."""

    user_message: Callable[[str], TurnResult]
    """Provided by the turn loop (:class:`~memgpt_core.agent.agent.Agent`); /retry runs the last message again."""

    def memory_text(self) -> str:
        return memory.render(self.record) + "\n" + self._counts()

    def dump(self, n: int | None = None) -> list[dict[str, Any]]:
        messages = self.messages([])
        return messages if n is None else messages[-n:] if n > 0 else []

    def pop(self, n: int = 1) -> int:
        """Undo: remove the last ``n`` messages from the context and from recall. Returns how many went."""
        n = max(0, min(n, len(self.context)))
        if not n:
            return 0
        gone = self.context[-n:]
        with self.saving():
            self.store.delete_messages([m.id for m in gone])
            self.record.context = [m.id for m in self.context[:-n]]
            self.store.save_agent(self.record)
        self.context = self.context[:-n]
        self._recall_count = self.store.count_messages(self.record.id)
        return n

    def retry(self) -> TurnResult:
        """Run the last user message again, dropping what the agent answered to it."""
        for index in range(len(self.context) - 1, -1, -1):
            message = self.context[index]
            if message.role == "user" and '"type": "user_message"' in (message.content or ""):
                self.pop(len(self.context) - index)
                return self.user_message(message.text)
        raise MemGPTError("there is no user message to retry in the current context")

    def _last_assistant(self) -> MessageRecord:
        for message in reversed(self.context):
            if message.role == "assistant":
                return message
        raise MemGPTError("the agent has not said anything yet")

    def rethink(self, text: str) -> None:
        """Replace the inner thoughts of the agent's last step."""
        message = self._last_assistant()
        message.content = text
        message.written = None  # no longer what the model wrote
        if (message.function_call or {}).get("name") != "send_message":
            message.text = text
        self.store.update_message(self.record.id, message)

    def rewrite(self, text: str) -> None:
        """Replace the text of the agent's last send_message."""
        for message in reversed(self.context):
            call = message.function_call or {}
            if message.role == "assistant" and call.get("name") == "send_message":
                arguments = json.loads(call.get("arguments") or "{}")
                arguments["message"] = text
                message.function_call = {"name": "send_message", "arguments": json.dumps(arguments)}
                message.written = None
                message.text = text
                self.store.update_message(self.record.id, message)
                return
        raise MemGPTError("the agent has not sent a message yet")

    def summarize(self) -> bool:
        """Summarise now, keeping the last few messages. False if there is nothing old enough."""
        return self._summarise(self.settings.keep_last)
