"""Sampling settings: one set of names in core, and the one table that turns them into each server's names.

Core, the config file, the flags and ``CompletionRequest.sampling`` all use the canonical names below (llama.cpp's
own, which Ollama shares). A backend calls :func:`to_server` with its server's dialect just before it builds a
request body; nothing else renames a setting.

What each server calls a setting, and which it has at all (read from each server's own source or documentation):

- llama.cpp's ``/completion`` (server README and ``server.cpp`` ``params_from_json``): the canonical names. The
  server echoes what it used in ``generation_settings``, which the tests compare. Newer servers refuse
  ``repeat_last_n`` or ``dry_penalty_last_n`` below 0 (400 "Value must be between 0 <= value"), so neither takes -1.
- KoboldCpp 1.76 (``koboldcpp.py`` ``generate``, reading ``genparams``): ``rep_pen``, ``rep_pen_range``,
  ``sampler_seed``, ``typical``, ``tfs``; ``temperature``, ``top_k``, ``top_p``, ``min_p`` and the four ``dry_*``
  fields under the same names.
- text-generation-webui (``modules/api/typing.py`` ``GenerationOptions``; the old ``/api/v1/generate`` read the same
  generation parameters): ``repetition_penalty``, ``repetition_penalty_range``, ``seed``, ``min_p``, ``top_k``,
  ``dry_multiplier``, ``dry_base``, ``dry_allowed_length``. Its DRY has no window of its own (it uses the penalty
  range), so ``dry_penalty_last_n`` is not sent.
- Ollama (``api/types.go`` ``Options``, sent in ``options``): the canonical names; no DRY.
- LM Studio (its OpenAI-compatibility page, "supported payload parameters"): ``temperature``, ``top_p``, ``top_k``,
  ``repeat_penalty``, ``seed``.
- vLLM (its extra sampling parameters on ``/v1/completions``): ``repetition_penalty``, ``top_k``, ``min_p``,
  ``seed``; no penalty window and no DRY.
- Any other OpenAI-compatible server: OpenAI's own fields only, ``temperature``, ``top_p`` and ``seed``; OpenAI
  itself refuses a field it does not know.

A setting a server does not have is left out of its request (never sent under a wrong name);
:func:`unsupported` names them, so the user is told once instead of wondering why a setting does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memgpt_core.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One sampling setting: its canonical name, its type and bounds, and a line of help."""

    name: str
    kind: type
    help: str
    minimum: float | None = None
    maximum: float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, *, where: str) -> float | int:
        """``value`` (a number, or its text) as this setting's type; ConfigError naming ``where`` otherwise."""
        expected = "a whole number" if self.kind is int else "a number"
        bounds = self.bounds()
        try:
            if isinstance(value, bool):
                raise ValueError
            if self.kind is int:
                number: float | int = int(str(value).strip()) if not isinstance(value, int) else value
            else:
                number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: {self.name} = {value!r} is not {expected}",
                fix=f"give {self.name} {expected}{bounds}, or remove it for the server's default",
            ) from None
        low_ok = self.minimum is None or number >= self.minimum
        high_ok = self.maximum is None or number <= self.maximum
        if not (low_ok and high_ok) or number != number:  # NaN compares false to everything
            raise ConfigError(
                f"{where}: {self.name} = {value!r} is out of range",
                fix=f"give {self.name} {expected}{bounds}, or remove it for the server's default",
            )
        return number

    def bounds(self) -> str:
        def shown(x: float) -> str:
            return f"{x:g}"

        if self.minimum is not None and self.maximum is not None:
            return f" from {shown(self.minimum)} to {shown(self.maximum)}"
        if self.minimum is not None:
            return f" of at least {shown(self.minimum)}"
        return ""


SETTINGS: tuple[Setting, ...] = (
    Setting("temperature", float, "Sampling randomness (0: always the likeliest token).", 0.0, 5.0),
    Setting("top_p", float, "Keep the likeliest tokens up to this total probability (1: off).", 0.0, 1.0),
    Setting("top_k", int, "Keep only this many likeliest tokens (0: off).", 0),
    Setting("min_p", float, "Drop tokens less likely than this share of the likeliest one (0: off).", 0.0, 1.0),
    Setting("repeat_penalty", float, "Penalty on tokens already in the recent window (1: off).", 0.0, 5.0),
    Setting("repeat_last_n", int, "How many recent tokens the repeat penalty looks at.", 0),
    Setting("seed", int, "Sampling seed, for answers that can be reproduced (-1: random).", -1),
    Setting("dry_multiplier", float, "DRY penalty on repeating a sequence seen before (0: off).", 0.0, 100.0),
    Setting("dry_base", float, "How fast the DRY penalty grows with the length of the repeat.", 1.0, 10.0),
    Setting("dry_allowed_length", int, "Repeats up to this many tokens go without a DRY penalty.", 0),
    Setting("dry_penalty_last_n", int, "How many recent tokens DRY looks at.", 0),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

ALIASES: dict[str, str] = {
    "repetition_penalty": "repeat_penalty",
    "rep_pen": "repeat_penalty",
    "repetition_penalty_range": "repeat_last_n",
    "rep_pen_range": "repeat_last_n",
    "sampler_seed": "seed",
    "typical": "typical_p",
    "tfs": "tfs_z",
}
"""Other servers' names for canonical settings, accepted wherever a name is read (the config file, code)."""

DEFAULTS: Mapping[str, float | int] = {}
"""The settings order's own lowest level (under the config file), shown by origin as "default": empty. The agent's
measured defaults (``memgpt_core.agent.defaults.DEFAULT_SAMPLING``: DRY) sit beneath even this, applied by the agent to
each request, so that a server without DRY drops them without a note; the user's settings at any level win."""
DEFAULTS_BY_BACKEND: Mapping[str, Mapping[str, float | int]] = {}
"""Per backend (``"embedded"`` for the embedded server), over :data:`DEFAULTS`, for defaults measured per backend
family. Empty: none."""


def defaults_for(backend: str | None) -> dict[str, float | int]:
    """The default sampling settings for ``backend`` (None: the embedded server)."""
    return {**DEFAULTS, **DEFAULTS_BY_BACKEND.get(backend or "embedded", {})}


# The dialects: canonical name -> the server's name, or None where the server has no such setting. ``typical_p`` and
# ``tfs_z`` are not user settings (no flag or config key) but are renamed for code that sends them.
_SAME = {s.name: s.name for s in SETTINGS} | {"typical_p": "typical_p", "tfs_z": "tfs_z"}
_OPENAI_ONLY = {name: None for name in _SAME} | {"temperature": "temperature", "top_p": "top_p", "seed": "seed"}
DIALECTS: dict[str, dict[str, str | None]] = {
    "llama.cpp": dict(_SAME),
    "koboldcpp": _SAME
    | {
        "repeat_penalty": "rep_pen",
        "repeat_last_n": "rep_pen_range",
        "seed": "sampler_seed",
        "typical_p": "typical",
        "tfs_z": "tfs",
    },
    "webui": _SAME
    | {
        "repeat_penalty": "repetition_penalty",
        "repeat_last_n": "repetition_penalty_range",
        "dry_penalty_last_n": None,
        "tfs_z": "tfs",
    },
    "ollama": _SAME
    | {"dry_multiplier": None, "dry_base": None, "dry_allowed_length": None, "dry_penalty_last_n": None}
    | {"tfs_z": None},
    "lmstudio": _OPENAI_ONLY | {"top_k": "top_k", "repeat_penalty": "repeat_penalty"},
    "vllm": _OPENAI_ONLY | {"top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repetition_penalty"},
    "openai": dict(_OPENAI_ONLY),
}
"""Each server dialect's names. A backend passes its dialect's key to :func:`to_server`."""

BACKEND_DIALECTS: dict[str, str] = {
    "llamacpp": "llama.cpp",
    "koboldcpp": "koboldcpp",
    "webui": "webui",
    "webui-legacy": "webui",
    "ollama": "ollama",
    "lmstudio": "lmstudio",
    "lmstudio-legacy": "lmstudio",
    "vllm": "vllm",
}
"""Which dialect the backends shipped with memgpt speak, for telling the user what their server ignores. ``openai``
is not listed: it finds its server's dialect (llama.cpp, vLLM or plain OpenAI) only once connected. A backend from
elsewhere is not checked either (its own ``to_server`` call still drops what its dialect lacks)."""


def canonical(name: str) -> str:
    """The canonical name for ``name`` (another server's name for a setting is accepted); unknown names unchanged."""
    key = name.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def check(values: Mapping[str, Any], *, where: str) -> dict[str, float | int]:
    """``values`` under canonical names with checked types and ranges; ConfigError naming ``where`` for a bad one."""
    checked: dict[str, float | int] = {}
    for raw_name, value in values.items():
        name = canonical(raw_name)
        setting = BY_NAME.get(name)
        if setting is None:
            raise ConfigError(
                f"{where}: {raw_name!r} is not a sampling setting",
                fix="use one of " + ", ".join(BY_NAME),
            )
        checked[name] = setting.check(value, where=where)
    return checked


def to_server(sampling: Mapping[str, Any], dialect: str) -> dict[str, Any]:
    """``sampling`` under ``dialect``'s names, without the settings that server does not have.

    A name that is not a sampling setting at all passes through unchanged (a backend's caller may send a field of
    its server's own). An unknown dialect raises ValueError: that is a bug in the calling backend.
    """
    try:
        names = DIALECTS[dialect]
    except KeyError:
        raise ValueError(f"unknown sampling dialect {dialect!r}; one of {sorted(DIALECTS)}") from None
    body: dict[str, Any] = {}
    for raw_name, value in sampling.items():
        name = canonical(raw_name)
        if name not in names:
            body[raw_name] = value
        elif names[name] is not None:
            body[names[name]] = value  # type: ignore[index]
    return body


def unsupported(sampling: Mapping[str, Any], dialect: str) -> list[str]:
    """The canonical names in ``sampling`` that ``dialect``'s server does not have (so they are not sent)."""
    names = DIALECTS.get(dialect, {})
    return [canonical(n) for n in sampling if canonical(n) in names and names[canonical(n)] is None]


def describe(sampling: Mapping[str, Any]) -> str:
    """One line for people: ``temperature 0.7, top_k 40``, or the server's defaults when empty."""
    if not sampling:
        return "the server's defaults"
    order = {s.name: i for i, s in enumerate(SETTINGS)}
    ordered = sorted(sampling.items(), key=lambda item: order.get(item[0], len(order)))
    return ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}" for name, value in ordered)
