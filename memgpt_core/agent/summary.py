"""Making the conversation fit the context window: summaries of older messages, written by the model when it can.

Older messages leave the prompt but stay in recall memory; a summary (a ``system_alert`` event) takes their place,
and core memory is shown afresh at that point, since the prompt is rewritten from there on anyway.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memgpt_core.agent import memory
from memgpt_core.agent.budget import PRESSURE_THRESHOLD, ContextTooSmallError, too_small
from memgpt_core.agent.defaults import with_defaults
from memgpt_core.agent.events import Event
from memgpt_core.agent.layout import SNAPSHOT_KEY, PromptLayout
from memgpt_core.agent.requests import ask
from memgpt_core.errors import MemGPTError
from memgpt_core.storage import MessageRecord

if TYPE_CHECKING:
    from memgpt_core.backend import Backend

SUMMARY_SCHEMA: dict[str, Any] = {
    "name": "save_summary",
    "description": "Save the summary of the older messages.",
    "parameters": {
        "type": "object",
        "properties": {"summary": {"type": "string", "description": "The summary, in the first person."}},
        "required": ["summary"],
    },
}
SUMMARY_MARKER = "Summary of "


class Summaries(PromptLayout):
    """Fits each step's prompt into the window, summarising older messages (at most twice per step) when needed."""

    backend: Backend
    busy: Callable[[str], contextlib.AbstractContextManager[Any]]

    def _reserve(self) -> int:
        """Output room a step needs at the least; below it, summarise first."""
        return min(self.settings.max_tokens, max(96, self.window // 8))

    def _fit(self, pending: list[MessageRecord]) -> tuple[str, int]:
        """The prompt and its token count, summarising (at most twice, never in a loop) until a reply fits."""
        prompt = self.build_prompt(pending)
        tokens = self.counter.count(prompt)
        reserve = self._reserve()
        for keep in (self.settings.keep_last, 0):
            if tokens + reserve <= self.window:
                break
            if self._summarise(keep):
                prompt = self.build_prompt(pending)
                tokens = self.counter.count(prompt)
        if tokens + reserve > self.window:
            raise self._too_small(pending, reserve)
        if tokens > PRESSURE_THRESHOLD * self.window and not self.record.state.get("pressure_warned"):
            # Told once per filling: the alert is saved with this step, and cleared when a summary frees room.
            self.record.state["pressure_warned"] = True
            pending.append(
                self._event(
                    "system_alert",
                    message=(
                        "Memory pressure: the context is over 75% full, and older messages will soon be summarised. "
                        "Save anything important with core_memory_append or archival_memory_insert."
                    ),
                )
            )
            prompt = self.build_prompt(pending)
            tokens = self.counter.count(prompt)
            if tokens + reserve > self.window:  # no room even for the alert: a summary comes first instead
                pending.pop()
                self.record.state["pressure_warned"] = False
                prompt = self.build_prompt(pending)
                tokens = self.counter.count(prompt)
        return prompt, tokens

    def _too_small(self, pending: list[MessageRecord], reserve: int) -> ContextTooSmallError:
        base_prompt = self.wrapper.prompt(self.messages([]), self.functions)
        base = self.counter.count(base_prompt)
        message = sum(self.counter.count(m.content or "") for m in pending)
        return too_small(base, message, reserve, self.window)

    def _summarise(self, keep: int) -> bool:
        """Replace all but the last ``keep`` context messages by a summary. False if there is nothing to shrink."""
        context = self.context
        cut = max(0, len(context) - keep)
        # Never keep a function result without the call it answers.
        while cut < len(context) and context[cut].role == "function":
            cut += 1
        old = context[:cut]
        if not old or (len(old) == 1 and self._is_summary(old[0])):
            return False
        summary = self._summary_from_model(old)
        text = (
            f"{SUMMARY_MARKER}{len(old)} older messages ({old[0].created_at} to {old[-1].created_at} UTC), "
            f"which are still in recall memory: {summary}"
        )
        with self.saving():
            message = self.store.add_message(
                self.record.id,
                "user",
                self._event("system_alert", message=text).content,
            )
            self.record.context = [message.id] + [m.id for m in context[cut:]]
            self.record.state["pressure_warned"] = False
            self.record.state["summaries"] = int(self.record.state.get("summaries", 0)) + 1
            # The prompt is rewritten from here on anyway, so this is when core memory is shown afresh.
            self.record.state[SNAPSHOT_KEY] = self._take_snapshot()
            self.store.save_agent(self.record)
        self.context = [message, *context[cut:]]
        self._emit(Event("status", text=f"summarised {len(old)} older messages to free context (kept in recall)"))
        return True

    @staticmethod
    def _is_summary(message: MessageRecord) -> bool:
        return message.role == "user" and SUMMARY_MARKER in (message.content or "")[:80]

    def _summary_from_model(self, old: list[MessageRecord]) -> str:
        """Ask the model for a summary through the same wrapper (and grammar); a plain fallback if it cannot."""
        lines = [transcript_line(m) for m in old]
        lines = [line for line in lines if line]
        budget = self.window - self.settings.summary_max_tokens - 64
        # Halve the oldest part away until the request fits: at most log2(n) token counts.
        while True:
            messages = [
                {"role": "system", "content": memory.prompt_text("summary")},
                {"role": "user", "content": "\n".join(lines) or "(no messages)"},
            ]
            prompt = self.wrapper.prompt(messages, [SUMMARY_SCHEMA])
            if self.counter.count(prompt) <= budget or len(lines) <= 1:
                break
            lines = lines[len(lines) // 2 :]
        if self.counter.count(prompt) > budget:
            return fallback_summary(old)
        from memgpt_core.models import CompletionRequest
        from memgpt_core.selection import negotiate_grammar

        try:
            # Built for the summary's own cap, so that the summary closes before the cap cuts it off.
            grammar, _ = negotiate_grammar(
                self.wrapper, self.backend, [SUMMARY_SCHEMA], max_tokens=self.settings.summary_max_tokens
            )
            request = CompletionRequest(
                prompt=prompt,
                max_tokens=self.settings.summary_max_tokens,
                stop=list(self.wrapper.stop_sequences),
                grammar=grammar,
                sampling=with_defaults(self.settings.sampling),
                cache_key=self.record.id,
                context_window=self.window,
            )
            with self.busy("summarising"):
                completion = ask(self.backend, request)
            call = self.wrapper.parse(completion.text, [SUMMARY_SCHEMA])
            summary = str(call.arguments.get("summary", "")).strip()
        except MemGPTError:
            summary = ""  # whatever failed, the fallback below keeps the agent going; the step reports real trouble
        return summary or fallback_summary(old)


def transcript_line(message: MessageRecord) -> str:
    """One readable line of a message for the summariser."""
    limit = 240
    if message.role == "assistant":
        call = message.function_call or {}
        name = call.get("name", "")
        if name == "send_message":
            line = f"assistant: {message.text}"
        else:
            line = f"assistant called {name}" + (f" ({message.content})" if message.content else "")
    elif message.role == "function":
        return ""  # results repeat what the calls asked for; the summary needs the conversation
    else:
        try:
            payload = json.loads(message.content or "{}")
        except ValueError:
            payload = {}
        kind = payload.get("type")
        if kind == "user_message":
            line = f"user: {payload.get('message', '')}"
        elif kind == "system_alert" and SUMMARY_MARKER in str(payload.get("message", "")):
            line = f"earlier summary: {payload['message']}"
            limit = 600
        else:
            return ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def fallback_summary(old: list[MessageRecord]) -> str:
    users = [line for line in map(transcript_line, old) if line.startswith("user:")]
    topics = "; ".join(u[6:60] for u in users[-3:])
    return f"(written without the model) the user's last messages there were: {topics or 'none'}."
