"""The agent's measured defaults: the sampling settings it sends when the user has set none of its own.

Chosen with ``benchmarks/bench_first_chat.py`` on the embedded model (SmolLM2-135M-Instruct on llama-server, the
``auto-grammar`` wrapper); the numbers, old against new, are in docs/benchmarks.md ("The embedded model's first
chat"). Names are the canonical ones (llama.cpp's, see memgpt_core.sampling); a backend whose server lacks a setting
leaves it out of its request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_SAMPLING: dict[str, float | int] = {
    "dry_multiplier": 0.8,
    "dry_base": 1.75,
    "dry_allowed_length": 2,
    "dry_penalty_last_n": 8192,
}
"""DRY ("don't repeat yourself") over the whole conversation: a token that would continue a run of more than two
tokens already seen in the context is penalised, more steeply the longer the run (0.8 × 1.75^(run − 2) off its
logit). llama-server feeds the prompt to its penalty samplers, so this covers earlier replies, the user's own
messages and the persona. It stops the small model from repeating an earlier reply word for word or echoing the
user's message back, and costs no measurable time per token. Short runs stay free: a name or a number the user gave
can still be said back. ``dry_penalty_last_n`` is a number because llama-server refuses -1 ("the whole context");
8192 is the embedded server's context per slot."""


def with_defaults(own: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling settings a request sends: :data:`DEFAULT_SAMPLING`, with each setting the user chose in its place
    (``{"dry_multiplier": 0}`` turns DRY off; a setting the defaults do not name is added)."""
    return {**DEFAULT_SAMPLING, **own}
