"""The pydantic models that cross the plugin contracts: completion requests and results, grammars, parsed calls.

This module imports pydantic, so plugins import it inside the methods that need it, never at module level:
``memgpt --help`` and ``memgpt plugins list`` load every plugin and must stay instant.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GrammarFormat = Literal["gbnf", "json_schema"]


class Grammar(BaseModel):
    """A grammar built by a grammar provider, in one format a backend accepts."""

    model_config = ConfigDict(frozen=True)

    format: GrammarFormat
    text: str = Field(description="GBNF source, or a JSON Schema serialised as JSON text.")
    provider: str = ""


class CompletionRequest(BaseModel):
    """One raw-text completion: what the agent asks a backend for."""

    prompt: str
    max_tokens: int = Field(gt=0, description="Hard cap on generated tokens; a model without one can loop for minutes.")
    stop: list[str] = Field(default_factory=list)
    grammar: Grammar | None = None
    sampling: dict[str, Any] = Field(
        default_factory=dict,
        description="Sampling settings under core's canonical names (temperature, top_p, repeat_penalty, seed ...); "
        "a backend renames them for its server with memgpt_core.sampling.to_server.",
    )
    cache_key: str | None = Field(
        default=None,
        description="Stable per agent; backends that keep a prompt cache per slot use it to pick the slot.",
    )
    context_window: int | None = Field(default=None, description="The context size the agent budgets for.")
    ban_eos: bool = Field(
        default=False,
        description="Keep generating past the model's end-of-text token (doctor's speed probe). Backends map it to "
        "their server's field (llama.cpp `ignore_eos`, KoboldCpp `ban_eos_token`) and ignore it where there is none.",
    )


class Timings(BaseModel):
    """What the server reports about the work it did, when it reports it."""

    prompt_n: int | None = None
    prompt_ms: float | None = None
    predicted_n: int | None = None
    predicted_ms: float | None = None
    cache_n: int | None = None


class Completion(BaseModel):
    """A backend's answer to one CompletionRequest."""

    text: str
    finish_reason: Literal["stop", "length"] = Field(
        description="'length' means the token cap cut the output off, so it may be incomplete."
    )
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    timings: Timings | None = None
    model: str | None = None


class FunctionCall(BaseModel):
    """A whole function call read from model output: the name, its arguments, and the inner thoughts that came with it.

    An output cut off inside the call never becomes one: the parser raises ``TruncatedOutputError`` instead.
    """

    name: str
    arguments: dict[str, Any]
    inner_thoughts: str | None = None

    def to_chat_completion_response(self) -> dict[str, Any]:
        """The OpenAI-style assistant message MemGPT's wrappers return, and nothing more:
        ``{"role": "assistant", "content": thoughts, "function_call": {"name": ..., "arguments": <JSON text>}}``."""
        import json

        return {
            "role": "assistant",
            "content": self.inner_thoughts,
            "function_call": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }
