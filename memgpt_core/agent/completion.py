"""The retry policy of a step: prompt, complete and parse, with bounded retries at rising temperature.

Every request samples with the agent's measured defaults (``defaults.DEFAULT_SAMPLING``) under the user's own
settings. An unreadable answer is sampled again (a little hotter each time, and with another seed when one is
fixed, so a retry is never the same draw); one cut off by the token cap gets twice the room
on the next try; a prompt the server finds too long makes the agent summarise once. After that the step fails with
one error saying why, and nothing of it is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memgpt_core.agent.defaults import with_defaults
from memgpt_core.agent.streaming import generate
from memgpt_core.agent.summary import Summaries
from memgpt_core.errors import ContextOverflowError, ParseError, TruncatedOutputError

if TYPE_CHECKING:
    from memgpt_core.models import Completion, FunctionCall, Grammar
    from memgpt_core.storage import MessageRecord

RETRY_TEMPERATURE = (0.7, 0.2)
"""A retry without a configured temperature samples at 0.7 + 0.2 × attempt, so it does not repeat the same answer."""


def retry_sampling(own: dict[str, Any], attempt: int) -> dict[str, Any]:
    """The sampling settings of try number ``attempt`` (0 for the first): the defaults under the user's settings
    ``own``; a retry samples hotter unless the user fixed the temperature, and a fixed seed moves on by one per try
    (the same seed, prompt and temperature would draw the same unreadable answer again)."""
    sampling = with_defaults(own)
    if attempt:
        if "temperature" not in own:
            base, step = RETRY_TEMPERATURE
            sampling["temperature"] = base + step * attempt
        seed = sampling.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
            sampling["seed"] = seed + attempt
    return sampling


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


@dataclass
class Answer:
    """A readable answer: the call, the completion it came from, and what it took."""

    call: FunctionCall
    completion: Completion
    prompt_tokens: int
    """The prompt's size as the agent counted it."""
    attempts: int

    @property
    def raw(self) -> str:
        return self.completion.text


class Completions(Summaries):
    """One readable call per step, or ``TurnFailedError``."""

    grammar: Grammar | None

    def _answer(self, pending: list[MessageRecord], grammar: Grammar | None) -> Answer:
        from memgpt_core.models import CompletionRequest

        prompt, tokens = self._fit(pending)
        first_message = self._first_message()
        overflow_retried = False
        attempts = 0
        last_error: ParseError | None = None
        grow = 1
        while attempts <= self.settings.parse_retries:
            left = self.window - tokens
            request = CompletionRequest(
                prompt=prompt,
                max_tokens=max(1, min(self.settings.max_tokens * grow, left)),
                stop=list(self.wrapper.stop_sequences),
                grammar=grammar,
                sampling=retry_sampling(self.settings.sampling, attempts),
                cache_key=self.record.id,
                context_window=self.window,
            )
            try:
                with self.busy("thinking"):
                    completion, shown = generate(
                        self.backend,
                        request,
                        forcing=self.settings.forced_text,
                        stream=self.settings.stream,
                        on_event=self.on_event,
                    )
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
                call = self.wrapper.parse(completion.text, self.functions, first_message=first_message)
            except ParseError as exc:
                last_error = exc
                if shown is not None:
                    shown.reset(f"the answer could not be read ({exc.reason}); sampling it again")
                if isinstance(exc, TruncatedOutputError) or completion.finish_reason == "length":
                    grow *= 2  # cut off, not malformed: give the next try more room, if the context has it
                continue
            return Answer(call, completion, tokens, attempts)
        assert last_error is not None
        raise self._turn_failed(last_error, attempts)

    def _turn_failed(self, error: ParseError, attempts: int) -> TurnFailedError:
        if self.grammar is None:
            fix = (
                "use a -grammar wrapper (for example --model chatml-grammar or airoboros-l2-70b-2.1-grammar) with a "
                "backend that supports grammars (llamacpp, koboldcpp, webui, lmstudio), or a larger model"
            )
        else:
            fix = "try a larger model (grammar sampling was already on), or /retry"
        if isinstance(error, TruncatedOutputError):
            fix += "; the answer was cut off, so a bigger output cap (--max-tokens) or context may help"
        return TurnFailedError(error.reason, error.raw, attempts=attempts, fix=fix)
