"""The MemGPT agent loop: timestamped events in, one function call per step, heartbeats, retries and summaries.

One step is: fit the context (summarise if needed) → prompt through the wrapper → completion from the backend (with a
grammar when wrapper and backend agree) → parse → run the function → write everything in ONE transaction. The step's
inputs (the user message, a heartbeat) are written in that same transaction, so a failed or killed step leaves the
agent exactly as it was before it.

The prompt is laid out for the server's prompt cache: the instructions and the function documentation first (they
never change), then a snapshot of core memory with the memory counts, then the messages in order, and nothing after
them. The snapshot is retaken only when a summary rewrites the conversation anyway; an edit in between returns the
block's new text as its function result. So every prefix of the prompt stays byte-stable from turn to turn, and a new
turn (or a memory edit) costs the server only its new messages, never the conversation before them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from memgpt_core.agent import functions, memory
from memgpt_core.agent.budget import (
    DEFAULT_CONTEXT_WINDOW,
    PRESSURE_THRESHOLD,
    ContextTooSmallError,
    TokenCounter,
    too_small,
)
from memgpt_core.agent.events import Event, StepInfo, TurnResult
from memgpt_core.agent.memory import FunctionError
from memgpt_core.errors import BackendError, ContextOverflowError, MemGPTError, ParseError
from memgpt_core.storage import AgentRecord, MessageRecord, Store
from memgpt_core.storage.sqlite import now as store_now

if TYPE_CHECKING:
    from memgpt_core.backend import Backend
    from memgpt_core.models import Completion, Grammar

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
MAX_STRING_CHARS = 600
"""The grammar's cap on any one string, whatever the budget: it stops a small model repeating itself for minutes."""
SNAPSHOT_KEY = "memory_snapshot"


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


class TurnFailedError(ParseError):
    """The model's output stayed unreadable after every retry; the agent's state is as it was before the step."""

    def __init__(self, reason: str, raw: str, *, attempts: int, fix: str) -> None:
        super().__init__(reason, raw, fix=fix)
        self.attempts = attempts
        self.message = (
            f"the model's answer could not be read as a function call after {attempts} tries ({reason}); "
            f"nothing was saved from this step.\n  raw output: {raw[:500]!r}"
        )
        self.args = (self.message,)


def event_time(day: str | None = None) -> str:
    """The short time an event carries: HH:MM, with the date only when it is not ``day`` (the snapshot's date).
    A small model copies a long timestamp from every event into its memory and its replies."""
    now = datetime.now(timezone.utc)
    return now.strftime("%H:%M") if now.strftime("%Y-%m-%d") == day else now.strftime("%Y-%m-%d %H:%M")


def full_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


class Agent:
    """One open agent: its record from the store, a backend, and a wrapper. Not thread-safe; one turn at a time."""

    def __init__(
        self,
        store: Store,
        record: AgentRecord,
        backend: Backend,
        wrapper: Any,
        settings: AgentSettings | None = None,
        *,
        wrapper_name: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        busy: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.backend = backend
        self.wrapper = wrapper
        self.wrapper_name = wrapper_name or getattr(wrapper, "name", type(wrapper).__name__)
        self.settings = settings or AgentSettings()
        self.on_event = on_event
        self.busy = busy or (lambda label: contextlib.nullcontext())
        self.counter = TokenCounter(backend)
        self.functions = functions.SCHEMAS
        self.context: list[MessageRecord] = store.get_messages(record.context)
        self.notes: list[str] = []
        self.window = self._context_window()
        self.grammar, self.grammar_note = self._grammar(self.functions)
        self._recall_count = store.count_messages(record.id)
        self._archival_count = store.count_archival(record.id)
        self._events: list[Event] | None = None
        self._reply_only: Grammar | None = None

    # -- set-up ----------------------------------------------------------------------------------------------------

    def _context_window(self) -> int:
        wanted = self.settings.context_window
        server: int | None = None
        if self.backend.capabilities.server_context:
            with contextlib.suppress(BackendError):
                server = self.backend.context_window()
        if wanted and server and wanted > server:
            self.notes.append(
                f"--context-window is {wanted} but the server's context is {server} tokens; using {server} "
                "(start the server with a bigger context to use more)"
            )
            return server
        return wanted or server or DEFAULT_CONTEXT_WINDOW

    def _grammar(
        self, schemas: list[dict[str, Any]], max_tokens: int | None = None
    ) -> tuple[Grammar | None, str | None]:
        """The grammar for these functions, or None and the one sentence saying why grammar sampling is off.

        It is built for the output cap (the step's unless given): the provider keeps every call within it, so a
        cut-off is rare."""
        provider_name = getattr(self.wrapper, "grammar", None)
        accepted = set(self.backend.capabilities.grammar_formats)
        if not provider_name:
            if not accepted:
                return None, None  # neither side does grammars: nothing to switch on, nothing to say
            return None, (
                f"grammar sampling is off: the {self.wrapper_name} wrapper asks for no grammar, although the "
                f"{self.backend.name} backend supports one; use a -grammar wrapper for fewer unreadable answers"
            )
        if not accepted:
            return None, (
                f"grammar sampling is off: the {self.backend.name} backend accepts no grammar, so the model's output "
                "is repaired after the fact instead"
            )
        from memgpt_core import plugins
        from memgpt_core.models import Grammar

        try:
            provider = plugins.get_grammar(provider_name)
            formats = [f for f in ("gbnf", "json_schema") if f in accepted and f in provider.formats]
            if not formats:
                return None, (
                    f"grammar sampling is off: the {self.backend.name} backend takes {sorted(accepted)} but the "
                    f"{provider_name} grammar provider makes {sorted(provider.formats)}"
                )
            text = provider.build(
                schemas,
                format=formats[0],
                inner_thoughts_in_params=getattr(self.wrapper, "inner_thoughts_in_params", True),
                max_string_length=MAX_STRING_CHARS,
                max_tokens=max_tokens or self.settings.max_tokens,
            )
            return Grammar(format=formats[0], text=text, provider=provider_name), None
        except MemGPTError as exc:
            return None, f"grammar sampling is off: the {provider_name} grammar provider failed: {exc}"
        except Exception as exc:  # a provider is third-party code: its bug must not end the turn
            return None, (
                f"grammar sampling is off: the {provider_name} grammar provider failed: {type(exc).__name__}: {exc}"
            )

    # -- prompt ----------------------------------------------------------------------------------------------------

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

    def messages(self, pending: list[MessageRecord]) -> list[dict[str, Any]]:
        # Nothing comes after the newest message: whatever changes often would otherwise be re-read every turn, and
        # a small model copies the text that sits right before its answer.
        # The snapshot is a system message of its own, after the instructions and the function documentation that
        # the wrapper joins to the first one: retaking it at a summary leaves those ~1,000 tokens cached.
        chat = [
            {"role": "system", "content": memory.prompt_text("system")},
            {"role": "system", "content": self._snapshot()["text"]},
        ]
        chat += [m.to_chat() for m in (*self.context, *pending) if not _delivered(m)]
        return chat

    def _first_message(self) -> bool:
        return not any(m.role == "assistant" for m in self.context)

    def build_prompt(self, pending: list[MessageRecord]) -> str:
        return self.wrapper.chat_completion_to_prompt(
            self.messages(pending), self.functions, first_message=self._first_message()
        )

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
        base_prompt = self.wrapper.chat_completion_to_prompt(self.messages([]), self.functions)
        base = self.counter.count(base_prompt)
        message = sum(self.counter.count(m.content or "") for m in pending)
        return too_small(base, message, reserve, self.window)

    # -- summaries -------------------------------------------------------------------------------------------------

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
        before = copy.deepcopy(self.record)
        try:
            with self.store.transaction():
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
        except BaseException:
            self.record = before
            raise
        self.context = [message, *context[cut:]]
        self._emit(Event("status", text=f"summarised {len(old)} older messages to free context (kept in recall)"))
        return True

    @staticmethod
    def _is_summary(message: MessageRecord) -> bool:
        return message.role == "user" and SUMMARY_MARKER in (message.content or "")[:80]

    def _summary_from_model(self, old: list[MessageRecord]) -> str:
        """Ask the model for a summary through the same wrapper (and grammar); a plain fallback if it cannot."""
        lines = [_transcript_line(m) for m in old]
        lines = [line for line in lines if line]
        budget = self.window - self.settings.summary_max_tokens - 64
        # Halve the oldest part away until the request fits: at most log2(n) token counts.
        while True:
            messages = [
                {"role": "system", "content": memory.prompt_text("summary")},
                {"role": "user", "content": "\n".join(lines) or "(no messages)"},
            ]
            prompt = self.wrapper.chat_completion_to_prompt(messages, [SUMMARY_SCHEMA])
            if self.counter.count(prompt) <= budget or len(lines) <= 1:
                break
            lines = lines[len(lines) // 2 :]
        if self.counter.count(prompt) > budget:
            return _fallback_summary(old)
        from memgpt_core.models import CompletionRequest

        # Built for the summary's own cap, so that the summary closes before the cap cuts it off.
        grammar, _ = self._grammar([SUMMARY_SCHEMA], self.settings.summary_max_tokens)
        request = CompletionRequest(
            prompt=prompt,
            max_tokens=self.settings.summary_max_tokens,
            stop=list(getattr(self.wrapper, "stop_sequences", ()) or ()),
            grammar=grammar,
            sampling=dict(self.settings.sampling),
            cache_key=self.record.id,
            context_window=self.window,
        )
        try:
            with self.busy("summarising"):
                completion = self.backend.complete(request)
            parsed = self.wrapper.output_to_chat_completion_response(completion.text)
            arguments = _arguments(parsed)
            summary = str(arguments.get("summary", "")).strip()
        except (MemGPTError, ValueError, KeyError, TypeError):
            summary = ""
        # The wrapper now knows only save_summary; every step builds its prompt again before parsing, which re-arms it.
        return summary or _fallback_summary(old)

    # -- one step --------------------------------------------------------------------------------------------------

    def _complete(
        self, pending: list[MessageRecord], grammar: Grammar | None
    ) -> tuple[dict[str, Any], Completion, int, int, str]:
        """Prompt, complete and parse, with bounded retries. Returns (parsed, completion, tokens, attempts, raw)."""
        from memgpt_core.models import CompletionRequest

        prompt, tokens = self._fit(pending)
        overflow_retried = False
        attempts = 0
        last_error: ParseError | None = None
        grow = 1
        stop = list(getattr(self.wrapper, "stop_sequences", ()) or ())
        while attempts <= self.settings.parse_retries:
            left = self.window - tokens
            max_tokens = max(1, min(self.settings.max_tokens * grow, left))
            sampling = dict(self.settings.sampling)
            if attempts and "temperature" not in sampling:
                sampling["temperature"] = 0.7 + 0.2 * attempts  # sample something different on a retry
            request = CompletionRequest(
                prompt=prompt,
                max_tokens=max_tokens,
                stop=stop,
                grammar=grammar,
                sampling=sampling,
                cache_key=self.record.id,
                context_window=self.window,
            )
            try:
                with self.busy("thinking"):
                    completion = self.backend.complete(request)
            except ContextOverflowError as exc:
                # The server counted more than we did (or its window is smaller): shrink once, then give up plainly.
                if overflow_retried:
                    raise self._too_small(pending, self._reserve()) from exc
                overflow_retried = True
                # The real window is the server's n_ctx when it says, and at most this prompt's size when it does not;
                # budgeting with it makes _fit summarise.
                real = exc.context_window if exc.context_window else tokens
                self.window = max(256, min(self.window, real))
                prompt, tokens = self._fit(pending)
                continue
            attempts += 1
            try:
                parsed = self.wrapper.output_to_chat_completion_response(completion.text)
            except ParseError as exc:
                last_error = exc
                if completion.finish_reason == "length":
                    grow *= 2  # cut off, not malformed: give the next try more room, if the context has it
                continue
            return parsed, completion, tokens, attempts, completion.text
        assert last_error is not None
        raise self._turn_failed(last_error, attempts)

    def _turn_failed(self, error: ParseError, attempts: int) -> TurnFailedError:
        if self.grammar is None:
            fix = (
                "use a -grammar wrapper (for example --model chatml-grammar or airoboros-l2-70b-2.1-grammar) with a "
                "backend that supports grammars (llamacpp, koboldcpp, webui), or a larger model"
            )
        else:
            fix = "try a larger model (grammar sampling was already on), or /retry"
        if "cut off" in error.reason or "length" in error.reason or "truncat" in error.reason:
            fix += "; the answer was cut off, so a bigger output cap (--max-tokens) or context may help"
        return TurnFailedError(error.reason, error.raw, attempts=attempts, fix=fix)

    def _step(
        self, pending: list[MessageRecord], *, after_user: bool, only_reply: bool = False
    ) -> tuple[StepInfo, str | None]:
        started = time.perf_counter()
        warned = self.record.state.get("pressure_warned", False)
        try:
            grammar = self._reply_grammar() if only_reply else self.grammar
            parsed, completion, tokens, attempts, raw = self._complete(pending, grammar)
        except BaseException:
            # A failed step leaves nothing behind, not even the alert flag set while fitting (summaries, which
            # commit on their own, may have reset it; a reset flag is harmless).
            if self.record.state.get("pressure_warned") and not warned:
                self.record.state["pressure_warned"] = warned
            raise
        model_seconds = time.perf_counter() - started
        name = str(parsed["function_call"]["name"])
        raw_arguments = parsed["function_call"].get("arguments") or "{}"
        try:
            arguments = _arguments(parsed)
        except ValueError:
            arguments = {}
        thoughts = parsed.get("content")
        truncated = bool(parsed.get("truncated")) or completion.finish_reason == "length"
        wants_heartbeat = _truthy(arguments.pop("request_heartbeat", False))

        before = copy.deepcopy(self.record)
        events: list[Event] = []
        try:
            with self.store.transaction():
                saved = [
                    self.store.add_message(self.record.id, m.role, m.content, text=m.text, created_at=m.created_at)
                    for m in pending
                ]
                stamp = store_now()
                function_call = {
                    "name": name,
                    "arguments": raw_arguments if isinstance(raw_arguments, str) else json.dumps(raw_arguments),
                    # What the model wrote: the wrapper writes it back word for word when it is this same call,
                    # so the server's prompt cache still covers it on the next turn.
                    "raw": raw,
                }
                reply_text = str(arguments.get("message", "")) if name == "send_message" else ""
                assistant = self.store.add_message(
                    self.record.id,
                    "assistant",
                    thoughts,
                    function_call=function_call,
                    text=reply_text or (thoughts or ""),
                    created_at=stamp,
                )
                context = functions.FunctionContext(self.store, self.record, stamp)
                try:
                    result = functions.call(context, name, arguments)
                    ok = True
                except FunctionError as exc:
                    result, ok = f"Error: {exc}", False
                except Exception as exc:  # a function's own bug goes back to the model too; the turn goes on
                    result, ok = f"Error: {type(exc).__name__}: {exc}", False
                returned = self.store.add_message(
                    self.record.id,
                    "function",
                    json.dumps(
                        {
                            "status": "OK" if ok else "Failed",
                            "message": result,
                            "time": event_time(self._snapshot()["day"]),
                        },
                        ensure_ascii=False,
                    ),
                    name=name,
                    created_at=stamp,
                )
                self.record.context = self.record.context + [m.id for m in saved] + [assistant.id, returned.id]
                self.store.save_agent(self.record)
        except BaseException:
            self.record = before
            raise
        self.context = [*self.context, *saved, assistant, returned]
        self._recall_count += sum(1 for m in (*saved, assistant) if m.text)
        if name == "archival_memory_insert" and ok:
            self._archival_count += 1

        if not ok:
            heartbeat: str | None = "function failed; read the error and try again"
        elif after_user and name == "pause_heartbeats":
            # Pausing is not an answer: right after a user message it leads to a reply, whatever the settings.
            heartbeat = "pause_heartbeats does not answer the user; now answer with send_message"
        elif name in functions.NO_HEARTBEAT:
            heartbeat = None
        elif wants_heartbeat:
            heartbeat = "request_heartbeat == true"
        elif after_user and (name in functions.SEARCH_FUNCTIONS or self.settings.reply_heartbeat):
            heartbeat = "function called right after a user message; now answer the user"
        else:
            heartbeat = None

        if thoughts:
            events.append(Event("inner_thoughts", text=thoughts))
        events.append(Event("function_call", name=name, arguments=arguments))
        if name == "send_message" and ok:
            events.append(Event("assistant_message", text=str(arguments.get("message", ""))))
        else:
            events.append(Event("function_return", name=name, text=result, ok=ok))
        for event in events:
            self._emit(event)
        info = StepInfo(
            function=name,
            arguments=arguments,
            ok=ok,
            heartbeat=heartbeat,
            prompt_tokens_counted=tokens,
            prompt_tokens_server=completion.prompt_tokens,
            prompt_tokens_evaluated=completion.timings.prompt_n if completion.timings else None,
            attempts=attempts,
            model_seconds=model_seconds,
            truncated=truncated,
        )
        return info, heartbeat

    # -- turns -----------------------------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self._events is not None:
            self._events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    @contextlib.contextmanager
    def _collect(self) -> Iterator[TurnResult]:
        result = TurnResult()
        self._events = result.events
        try:
            yield result
        finally:
            self._events = None

    def _turn(self, first: MessageRecord, *, after_user: bool) -> TurnResult:
        with self._collect() as result:
            pending = [first]
            user_turn = after_user
            only_reply = False
            while True:
                if len(result.steps) >= self.settings.heartbeat_cap:
                    self._emit(
                        Event("status", text=f"stopped after {len(result.steps)} steps in a row (the heartbeat cap)")
                    )
                    break
                info, heartbeat = self._step(pending, after_user=user_turn, only_reply=only_reply)
                result.steps.append(info)
                waiting = False
                if heartbeat is None and after_user and self.settings.reply_heartbeat and not self._answered(result):
                    # The user spoke and the chain would end unanswered (a memory edit or search that asked for no
                    # heartbeat, or pause_heartbeats): one more step, which may only answer. The cap check above
                    # still bounds the turn.
                    heartbeat = "the user is still waiting for an answer"
                    waiting = True
                if heartbeat is None:
                    break
                only_reply = waiting or self._must_reply(result.steps, after_user=after_user)
                if only_reply and not waiting:
                    heartbeat = "now answer the user with send_message"
                pending = [self._event("heartbeat", reason=heartbeat)]
                user_turn = False
        return result

    @staticmethod
    def _answered(result: TurnResult) -> bool:
        # pause_heartbeats does not count: it would end the user's turn with no reply at all.
        return any(s.function == "send_message" and s.ok for s in result.steps)

    def _must_reply(self, steps: list[StepInfo], *, after_user: bool = False) -> bool:
        """True when the next step may only call send_message: it is the last one the cap allows, the model has used
        its free steps or its memory writes for this user message, or it just repeated a call it already made this
        turn. A small model otherwise edits memory or searches in circles before it answers. Only a grammar can
        enforce it; without one the model is told so, and the cap still ends the turn."""
        if any(s.function == "send_message" and s.ok for s in steps):
            return False
        if len(steps) + 1 >= self.settings.heartbeat_cap or len(steps) >= self.settings.free_steps:
            return True
        if after_user:
            writes = sum(1 for s in steps if s.function in functions.MEMORY_WRITES and s.ok)
            if writes >= self.settings.memory_writes or any(s.function == "pause_heartbeats" for s in steps):
                return True
        last = steps[-1]
        return any(s.function == last.function and s.arguments == last.arguments for s in steps[:-1])

    def _reply_grammar(self) -> Grammar | None:
        if self.grammar is None:
            return None
        if self._reply_only is None:
            self._reply_only, _ = self._grammar([functions.SCHEMA_BY_NAME["send_message"]])
        return self._reply_only

    def user_message(self, text: str) -> TurnResult:
        """The user spoke: run steps until the agent waits for the user again."""
        return self._turn(self._event("user_message", text, message=text), after_user=True)

    def heartbeat(self, reason: str = "the user asked you to continue") -> TurnResult:
        return self._turn(self._event("heartbeat", reason=reason), after_user=False)

    def login(self) -> TurnResult:
        """The user arrived: the agent greets them (MemGPT's opening when the user does not speak first)."""
        last = self.record.state.get("last_login", "never")
        self.record.state["last_login"] = full_time()
        return self._turn(self._event("login", last_login=last), after_user=True)

    # -- commands behind /memory, /dump, /pop, /retry, /rethink, /rewrite, /summarize -------------------------------

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
        before = copy.deepcopy(self.record)
        try:
            with self.store.transaction():
                self.store.delete_messages([m.id for m in gone])
                self.record.context = [m.id for m in self.context[:-n]]
                self.store.save_agent(self.record)
        except BaseException:
            self.record = before
            raise
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
                message.text = text
                self.store.update_message(self.record.id, message)
                return
        raise MemGPTError("the agent has not sent a message yet")

    def summarize(self) -> bool:
        """Summarise now, keeping the last few messages. False if there is nothing old enough."""
        return self._summarise(self.settings.keep_last)


def _delivered(message: MessageRecord) -> bool:
    """A send_message that worked: its result says nothing the call does not, so the prompt leaves it out (it stays
    stored). A failed one stays in, with its error."""
    return (
        message.role == "function"
        and message.name == "send_message"
        and (message.content or "").startswith('{"status": "OK"')
    )


def _arguments(parsed: dict[str, Any]) -> dict[str, Any]:
    raw = parsed["function_call"].get("arguments") or "{}"
    arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
    if not isinstance(arguments, dict):
        raise ValueError("arguments are not an object")
    return arguments


def _transcript_line(message: MessageRecord) -> str:
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


def _fallback_summary(old: list[MessageRecord]) -> str:
    users = [line for line in map(_transcript_line, old) if line.startswith("user:")]
    topics = "; ".join(u[6:60] for u in users[-3:])
    return f"(written without the model) the user's last messages there were: {topics or 'none'}."
