"""A backend that answers from a script, instantly: stands in for the MODEL's output in agent tests and benchmarks.

It is a test double of what a model writes, not of any code of ours: prompts still go through the real wrapper, the
answers through the real parser, and state through the real store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from memgpt_core.backend import Backend, Capabilities
from memgpt_core.errors import ContextOverflowError

Answer = str | tuple[str, str] | Callable[[Any], "str | tuple[str, str]"]
"""Raw text; or (text, finish_reason); or a function of the CompletionRequest returning either."""


def call_text(function: str, thoughts: str = "ok", /, **arguments: Any) -> str:
    """The raw text of a call in the shape the project's wrappers read."""
    return json.dumps({"function": function, "params": {"inner_thoughts": thoughts, **arguments}})


class ScriptedBackend(Backend):
    """Answers each completion with the next scripted answer; records every request it got."""

    name = "scripted"
    default_endpoint = "http://127.0.0.1:9"
    capabilities = Capabilities(server_context=True)

    def __init__(
        self,
        answers: Iterable[Answer] = (),
        *,
        window: int | None = 8192,
        default: Answer | None = None,
        overflow_at: int | None = None,
    ) -> None:
        super().__init__(None)
        self.answers = list(answers)
        self.window = window
        self.default = default
        self.overflow_at = overflow_at
        """Raise the server's ContextOverflowError for prompts longer than this many characters."""
        self.requests: list[Any] = []

    def complete(self, request: Any) -> Any:
        from memgpt_core.models import Completion

        self.requests.append(request)
        if self.overflow_at is not None and len(request.prompt) > self.overflow_at:
            raise ContextOverflowError("the prompt exceeds the available context size", url=self.endpoint)
        if self.answers:
            answer = self.answers.pop(0)
        elif self.default is not None:
            answer = self.default
        else:
            raise AssertionError("the script ran out of answers")
        if callable(answer):
            answer = answer(request)
        text, finish = (answer, "stop") if isinstance(answer, str) else answer
        return Completion(text=text, finish_reason=finish, prompt_tokens=len(request.prompt) // 3)

    def context_window(self) -> int | None:
        return self.window


class GrammarScriptedBackend(ScriptedBackend):
    """The same, declaring GBNF support, to exercise the grammar path.

    Like a model under a grammar, it continues the prompt: when the agent has appended the start of the call the
    grammar forces (``memgpt_core.agent.streaming``), only the rest of the scripted call is returned.
    """

    name = "scripted-grammar"
    capabilities = Capabilities(grammar_formats=frozenset({"gbnf"}), server_context=True)

    def complete(self, request: Any) -> Any:
        completion = super().complete(request)
        text = completion.text
        for cut in range(min(len(text), len(request.prompt)), 0, -1):
            if request.prompt.endswith(text[:cut]):
                return completion.model_copy(update={"text": text[cut:]})
        return completion


def make_agent(
    store: Any,
    backend: Backend,
    wrapper: Any,
    *,
    name: str = "tester",
    persona: str = "I am Sam, a friendly companion.",
    human: str = "The user's name is unknown.",
    **settings: Any,
) -> Any:
    """A new agent on ``store``, locked, with the given backend and wrapper (events are collected per turn)."""
    from memgpt_core.agent.agent import Agent, AgentSettings

    record = store.get_agent(name) or store.create_agent(name, persona=persona, human=human)
    lock = store.lock(record)
    agent = Agent(store, record, backend, wrapper, AgentSettings(**settings))
    agent.lock = lock  # type: ignore[attr-defined]  # released by the test's store fixture going away
    return agent
