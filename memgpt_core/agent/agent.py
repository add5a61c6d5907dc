"""The MemGPT agent loop: timestamped events in, one function call per step, heartbeats until the agent waits.

One step is: fit the context (summarise if needed) → prompt through the wrapper → completion from the backend (with a
grammar when wrapper and backend agree) → parse → run the function → write everything in ONE transaction. The step's
inputs (the user message, a heartbeat) are written in that same transaction, so a failed or killed step leaves the
agent exactly as it was before it.

The work is split by job: the state and its transaction (``state``), the prompt layout (``layout``), summaries and
fitting the window (``summary``), the retry policy (``completion``), the slash-command edits (``commands``); this
module holds the loop.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from memgpt_core.agent import functions
from memgpt_core.agent.budget import DEFAULT_CONTEXT_WINDOW, TokenCounter
from memgpt_core.agent.commands import EditCommands
from memgpt_core.agent.completion import Completions, TurnFailedError
from memgpt_core.agent.events import Event, StepInfo, TurnResult
from memgpt_core.agent.layout import event_time, full_time
from memgpt_core.agent.memory import FunctionError
from memgpt_core.agent.state import AgentSettings
from memgpt_core.backend import backend_failed
from memgpt_core.errors import BackendError, MemGPTError, PluginFailedError
from memgpt_core.storage import AgentRecord, MessageRecord, Store
from memgpt_core.storage.sqlite import now as store_now

if TYPE_CHECKING:
    from memgpt_core.backend import Backend
    from memgpt_core.models import Grammar
    from memgpt_core.wrapper import Wrapper

__all__ = ["Agent", "AgentSettings", "TurnFailedError"]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    return bool(value)


class Agent(Completions, EditCommands):
    """One open agent: its record from the store, a backend, and a wrapper. Not thread-safe; one turn at a time."""

    def __init__(
        self,
        store: Store,
        record: AgentRecord,
        backend: Backend,
        wrapper: Wrapper,
        settings: AgentSettings | None = None,
        *,
        on_event: Callable[[Event], None] | None = None,
        busy: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.backend = backend
        self.wrapper = wrapper
        self.settings = settings or AgentSettings()
        self.on_event = on_event
        self.busy = busy or (lambda label: contextlib.nullcontext())
        wrapper.fit_to(backend)
        self.counter = TokenCounter(backend)
        self.functions = functions.SCHEMAS
        self.context: list[MessageRecord] = store.get_messages(record.context)
        self.notes: list[str] = []
        self.window = self._context_window()
        self._recall_count = store.count_messages(record.id)
        self._archival_count = store.count_archival(record.id)
        self._events: list[Event] | None = None
        self._reply_only: Grammar | None = None
        self._grammar_failure: PluginFailedError | None = None
        self.grammar: Grammar | None = None
        self.grammar_note: str | None = None
        """Why grammar sampling is off, when it is but could be on."""
        try:
            self.grammar, self.grammar_note = self._negotiate(self.functions)
        except PluginFailedError as exc:  # told when a step needs the grammar, as a failure of that step
            self._grammar_failure = exc

    @property
    def wrapper_name(self) -> str:
        return self.wrapper.name

    # -- set-up ----------------------------------------------------------------------------------------------------

    def _context_window(self) -> int:
        wanted = self.settings.context_window
        server: int | None = None
        if self.backend.capabilities.server_context:
            try:
                server = self.backend.context_window()
            except BackendError:
                server = None
            except MemGPTError:
                raise
            except Exception as exc:
                raise backend_failed(self.backend, "reading the server's context size", exc) from exc
        if wanted and server and wanted > server:
            self.notes.append(
                f"--context-window is {wanted} but the server's context is {server} tokens; using {server} "
                "(start the server with a bigger context to use more)"
            )
            return server
        return wanted or server or DEFAULT_CONTEXT_WINDOW

    def _negotiate(self, schemas: list[dict[str, Any]]) -> tuple[Grammar | None, str | None]:
        from memgpt_core.selection import negotiate_grammar

        bound = self.settings.thoughts_max_chars
        if bound:
            schemas = [functions.with_thoughts_bound(schema, bound) for schema in schemas]
        return negotiate_grammar(self.wrapper, self.backend, schemas, max_tokens=self.settings.max_tokens)

    def _reply_grammar(self) -> Grammar | None:
        if self.grammar is None:
            return None
        if self._reply_only is None:
            self._reply_only, _ = self._negotiate([functions.SCHEMA_BY_NAME["send_message"]])
        return self._reply_only

    def first_request(self, text: str) -> tuple[str, Grammar | None]:
        """The prompt and grammar of the first step after the user says ``text``, exactly as a step builds them,
        without saving anything: what ``memgpt doctor`` samples to measure the parse rate."""
        if self._grammar_failure is not None:
            raise self._grammar_failure
        pending = [self._event("user_message", text, message=text)]
        prompt, _ = self._fit(pending)
        return prompt, self.grammar

    # -- one step --------------------------------------------------------------------------------------------------

    def _step(
        self, pending: list[MessageRecord], *, after_user: bool, only_reply: bool = False
    ) -> tuple[StepInfo, str | None]:
        started = time.perf_counter()
        warned = self.record.state.get("pressure_warned", False)
        try:
            if self._grammar_failure is not None:
                raise self._grammar_failure
            answer = self._answer(pending, self._reply_grammar() if only_reply else self.grammar)
        except BaseException:
            # A failed step leaves nothing behind, not even the alert flag set while fitting (summaries, which
            # commit on their own, may have reset it; a reset flag is harmless).
            if self.record.state.get("pressure_warned") and not warned:
                self.record.state["pressure_warned"] = warned
            raise
        model_seconds = time.perf_counter() - started
        call = answer.call
        name = call.name
        arguments = dict(call.arguments)
        thoughts = call.inner_thoughts
        wants_heartbeat = _truthy(arguments.pop("request_heartbeat", False))

        with self.saving():
            saved = [
                self.store.add_message(self.record.id, m.role, m.content, text=m.text, created_at=m.created_at)
                for m in pending
            ]
            stamp = store_now()
            reply_text = str(arguments.get("message", "")) if name == "send_message" else ""
            assistant = self.store.add_message(
                self.record.id,
                "assistant",
                thoughts,
                function_call={"name": name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
                text=reply_text or (thoughts or ""),
                created_at=stamp,
                # What the model wrote: the wrapper writes it back word for word when it is this same call, so the
                # server's prompt cache still covers it on the next turn.
                written=answer.raw,
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
        self.context = [*self.context, *saved, assistant, returned]
        self._recall_count += sum(1 for m in (*saved, assistant) if m.text)
        if name == "archival_memory_insert" and ok:
            self._archival_count += 1

        heartbeat = self._heartbeat(name, ok, wants_heartbeat, after_user=after_user)
        events: list[Event] = []
        if thoughts:
            events.append(Event("inner_thoughts", text=thoughts))
        events.append(Event("function_call", name=name, arguments=arguments))
        if name == "send_message" and ok:
            events.append(Event("assistant_message", text=str(arguments.get("message", ""))))
        else:
            events.append(Event("function_return", name=name, text=result, ok=ok))
        for event in events:
            self._emit(event)
        completion = answer.completion
        info = StepInfo(
            function=name,
            arguments=arguments,
            ok=ok,
            heartbeat=heartbeat,
            prompt_tokens_counted=answer.prompt_tokens,
            prompt_tokens_server=completion.prompt_tokens,
            prompt_tokens_evaluated=completion.timings.prompt_n if completion.timings else None,
            attempts=answer.attempts,
            model_seconds=model_seconds,
            truncated=completion.finish_reason == "length",
        )
        return info, heartbeat

    def _heartbeat(self, name: str, ok: bool, wants_heartbeat: bool, *, after_user: bool) -> str | None:
        """Why the agent takes another step after this call, or None when it waits for the user."""
        if not ok:
            return "function failed; read the error and try again"
        if after_user and name == "pause_heartbeats":
            # Pausing is not an answer: right after a user message it leads to a reply, whatever the settings.
            return "pause_heartbeats does not answer the user; now answer with send_message"
        if name in functions.NO_HEARTBEAT:
            return None
        if wants_heartbeat:
            return "request_heartbeat == true"
        if after_user and (name in functions.SEARCH_FUNCTIONS or self.settings.reply_heartbeat):
            return "function called right after a user message; now answer the user"
        return None

    # -- turns -----------------------------------------------------------------------------------------------------

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
