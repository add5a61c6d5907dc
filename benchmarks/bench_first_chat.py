"""The embedded model's first chat: ten scripted messages to fresh agents, scored for repeats, recall and memory writes.

    .venv/bin/python benchmarks/bench_first_chat.py --url http://127.0.0.1:39905               # the defaults, 5 runs
    .venv/bin/python benchmarks/bench_first_chat.py --config server --config default           # llama.cpp's vs ours
    .venv/bin/python benchmarks/bench_first_chat.py --config 'dry={"dry_multiplier": 0.8}' --wrapper chatml-grammar

Each run opens a new agent in a new MEMGPT_HOME exactly as ``memgpt run`` does (``open_session``, the llamacpp
backend, the wrapper given), says the messages of benchmarks/peer/messages.json one by one, and scores the turns with
benchmarks/data/first_chat_facts.json:

- a **repeated reply** is a reply (a send_message the user saw) that shares a run of 40 or more identical characters
  (the longest common substring, case and spaces as written) with any earlier reply of the same run;
- a **recall question** is answered with the fact when the replies of its turn contain the fact's key word as a whole
  word, ignoring case (the last question, "everything you know", needs two facts);
- a **copied reply** (not a goal, a symptom worth counting) shares 40 or more characters with something the user
  said so far or with the agent's persona;
- **memory writes** are core_memory_append, core_memory_replace and archival_memory_insert calls that succeeded;
- **seconds per turn** is the wall time of one user message, every step and retry included; **tokens written per
  turn** (what the model generated, counted by the server's tokenizer) is the part of it that does not depend on
  how busy the machine is.

Configurations: ``default`` sets no sampling, so the agent sends its own defaults; ``server`` sends llama.cpp's own
default for every sampling setting (read from the server's ``/props``), which is what the server does when nothing is
sent, as before the agent had defaults; ``NAME=JSON`` sends the JSON's settings, and llama.cpp's defaults for the
others. Run ``i`` of every configuration samples with seed ``--seed + i`` (paired runs), and runs are interleaved
(run 1 of each configuration, then run 2 ...) so that a change in the machine's load falls on all of them alike.
Without ``--url`` a llama-server is started as the embedded default starts it (bundled SmolLM2, 2 slots of 8192).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FACTS = HERE / "data" / "first_chat_facts.json"
REPEAT_CHARS = 40
MEMORY_WRITES = ("core_memory_append", "core_memory_replace", "archival_memory_insert")
CANONICAL = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
    "dry_penalty_last_n",
)
"""The sampling settings the ``server`` configuration pins to llama.cpp's own defaults (seed aside: it is per run)."""


# -- scoring ------------------------------------------------------------------------------------------------------


def longest_common(a: str, b: str) -> int:
    """The length of the longest run of characters ``a`` and ``b`` share."""
    return SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size


def repeated(replies: list[str]) -> list[bool]:
    """For each reply: does it share ``REPEAT_CHARS`` or more identical characters with an earlier one?"""
    return [
        any(longest_common(reply, earlier) >= REPEAT_CHARS for earlier in replies[:i])
        for i, reply in enumerate(replies)
    ]


def has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None


@dataclass
class Script:
    """The messages, the facts they give, and the recall questions about them."""

    messages: list[str]
    facts: dict[str, list[str]]
    recall: dict[int, tuple[list[str], int]]
    """Turn → (the facts asked for, how many of them the answer must hold)."""

    @classmethod
    def load(cls, path: Path) -> Script:
        data = json.loads(path.read_text("utf-8"))
        messages = json.loads((path.parent / data["messages"]).read_text("utf-8"))
        facts = {name: list(fact["key_words"]) for name, fact in data["facts"].items()}
        recall: dict[int, tuple[list[str], int]] = {}
        for question in data["recall"]:
            turn = int(question["turn"])
            if messages[turn - 1] != question["question"]:  # the messages changed under the facts file
                raise SystemExit(f"{path}: turn {turn} is {messages[turn - 1]!r}, not {question['question']!r}")
            recall[turn] = (list(question["facts"]), int(question.get("at_least", len(question["facts"]))))
        return cls(messages, facts, recall)

    def facts_in(self, text: str, names: list[str]) -> list[str]:
        return [name for name in names if any(has_word(text, word) for word in self.facts[name])]

    def answered(self, turn: int, replies: list[str]) -> bool | None:
        """Whether the turn's replies answer its recall question with the fact (None: no question at this turn)."""
        if turn not in self.recall:
            return None
        names, at_least = self.recall[turn]
        return len(self.facts_in("\n".join(replies), names)) >= at_least


# -- one run ------------------------------------------------------------------------------------------------------


class TurnTimeout(Exception):
    """The turn ran past --turn-timeout."""


def _alarm(signum: int, frame: object) -> None:
    raise TurnTimeout()


@dataclass
class Config:
    name: str
    sampling: dict[str, Any] | None
    """What the agent's settings get; None leaves them unset (the agent's own defaults)."""
    prompts: Path | None = None
    """A folder whose system.txt, persona_default.txt and human_default.txt (any of them) replace the shipped ones."""


def turn_calls(events: list[Any]) -> list[dict[str, Any]]:
    """The turn's function calls in order, each with whether it worked (a send_message: its message was shown)."""
    calls: list[dict[str, Any]] = []
    for event in events:
        if event.type == "function_call":
            calls.append({"name": event.name, "arguments": event.arguments or {}, "ok": False})
        elif event.type == "function_return" and calls:
            calls[-1]["ok"] = bool(event.ok)
        elif event.type == "assistant_message" and calls:
            calls[-1]["ok"] = True
    return calls


def one_run(url: str, wrapper: str, config: Config, script: Script, run: int, seed: int | None, timeout: float) -> dict:
    """A new agent, the scripted messages one by one, and every turn's replies, calls and time."""
    from memgpt_core.agent.session import SessionOptions, open_session

    events: list[Any] = []
    turns: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as home, _env("MEMGPT_HOME", home), _prompts(config.prompts):
        blocks = (
            {kind: config.prompts / f"{kind}_default.txt" for kind in ("persona", "human")} if config.prompts else {}
        )
        options = SessionOptions(
            agent=f"first-chat-{run}",
            backend="llamacpp",
            endpoint=url,
            wrapper=wrapper,
            **{kind: str(path) for kind, path in blocks.items() if path.is_file()},
        )
        with open_session(options, on_event=events.append) as session:
            agent = session.agent
            persona = agent.record.persona
            if config.sampling is not None or seed is not None:
                agent.settings.sampling = {**({} if seed is None else {"seed": seed}), **(config.sampling or {})}
            for turn, text in enumerate(script.messages, start=1):
                events.clear()
                error = None
                steps = 0
                known = {m.id for m in agent.context}
                started = time.perf_counter()
                signal.alarm(max(1, int(timeout)))
                try:
                    steps = len(agent.user_message(text).steps)
                except TurnTimeout:
                    error = "turn timeout"
                except Exception as exc:  # `memgpt run` shows it and waits for the next message; so does a run
                    error = f"{type(exc).__name__}: {exc}"[:300]
                finally:
                    signal.alarm(0)
                seconds = time.perf_counter() - started
                # What the model wrote this turn, in the model's tokens: the part of a turn's time that does not
                # depend on how busy the machine was.
                written = [m.written or "" for m in agent.context if m.id not in known and m.role == "assistant"]
                generated = sum(agent.counter.count(text) for text in written if text)
                calls = turn_calls(events)
                replies = [e.text or "" for e in events if e.type == "assistant_message"]
                turns.append(
                    {
                        "turn": turn,
                        "user": text,
                        "replies": replies,
                        "thoughts": [e.text for e in events if e.type == "inner_thoughts"],
                        "calls": calls,
                        "memory_writes": sum(1 for c in calls if c["name"] in MEMORY_WRITES and c["ok"]),
                        "steps": steps,
                        "generated_tokens": generated,
                        "seconds": round(seconds, 3),
                        "error": error,
                        "answered": script.answered(turn, replies),
                    }
                )
                print(
                    f"[{config.name} {wrapper} run {run} turn {turn}] {seconds:5.1f} s "
                    f"{[c['name'] for c in calls]} {' | '.join(replies)[:100]!r}"
                    + (f" ERROR {error}" if error else ""),
                    file=sys.stderr,
                    flush=True,
                )
            human = agent.record.human
            sent = dict(agent.settings.sampling)
    replies = [(t["turn"], reply) for t in turns for reply in t["replies"]]
    flags = repeated([reply for _, reply in replies])
    for t in turns:
        t["repeated"] = sum(1 for (turn, _), flag in zip(replies, flags, strict=True) if turn == t["turn"] and flag)
        said = [persona, *(u["user"] for u in turns if u["turn"] <= t["turn"])]
        t["copied"] = sum(1 for reply in t["replies"] if any(longest_common(reply, s) >= REPEAT_CHARS for s in said))
    notes = (
        human
        + "\n"
        + "\n".join(
            str(c["arguments"].get("content", ""))
            for t in turns
            for c in t["calls"]
            if c["name"] == "archival_memory_insert" and c["ok"]
        )
    )
    return {
        "config": config.name,
        "wrapper": wrapper,
        "run": run,
        "seed": seed,
        "sampling_set": sent,
        "turns": turns,
        "human_block": human,
        "facts_saved": script.facts_in(notes, list(script.facts)),
    }


@contextlib.contextmanager
def _prompts(folder: Path | None) -> Iterator[None]:
    """The agent's instructions read from ``folder``/system.txt while the run lasts, when that file exists (the way
    to measure another system prompt against the shipped one in one interleaved invocation)."""
    from memgpt_core.agent import memory

    if folder is None or not (folder / "system.txt").is_file():
        yield
        return
    shipped = memory.prompt_text
    text = (folder / "system.txt").read_text("utf-8").strip()
    memory.prompt_text = lambda name: text if name == "system" else shipped(name)  # type: ignore[assignment]
    try:
        yield
    finally:
        memory.prompt_text = shipped  # type: ignore[assignment]


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


# -- summary ------------------------------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's numbers over its runs."""
    turns = [t for r in runs for t in r["turns"]]
    seconds = [t["seconds"] for t in turns]
    asked = [t["answered"] for t in turns if t["answered"] is not None]
    return {
        "runs": len(runs),
        "turns": len(turns),
        "replies": sum(len(t["replies"]) for t in turns),
        "repeated_replies": sum(t["repeated"] for t in turns),
        "runs_with_repeats": sum(1 for r in runs if any(t["repeated"] for t in r["turns"])),
        "copied_replies": sum(t["copied"] for t in turns),
        "recall_answered": sum(1 for a in asked if a),
        "recall_asked": len(asked),
        "memory_writes": sum(t["memory_writes"] for t in turns),
        "facts_saved": sum(len(r["facts_saved"]) for r in runs),
        "turns_without_reply": sum(1 for t in turns if not t["replies"]),
        "failed_turns": sum(1 for t in turns if t["error"]),
        "steps_per_turn": round(statistics.mean(t["steps"] for t in turns), 2),
        "generated_tokens_per_turn": round(statistics.mean(t["generated_tokens"] for t in turns), 1),
        "seconds_per_turn_mean": round(statistics.mean(seconds), 2),
        "seconds_per_turn_median": round(statistics.median(seconds), 2),
        "seconds_per_turn_max": round(max(seconds), 2),
    }


def markdown(results: list[dict[str, Any]], facts: int) -> str:
    lines = [
        "| configuration | wrapper | runs | repeated replies | recall answered | memory writes | facts saved "
        "| copied replies | no reply / failed turns | steps per turn | tokens written per turn "
        "| s per turn (mean / median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["summary"]
        lines.append(
            f"| {r['config']} | {r['wrapper']} | {s['runs']} | {s['repeated_replies']} of {s['replies']} "
            f"| {s['recall_answered']} of {s['recall_asked']} | {s['memory_writes']} "
            f"| {s['facts_saved']} of {facts * s['runs']} | {s['copied_replies']} "
            f"| {s['turns_without_reply']} / {s['failed_turns']} "
            f"| {s['steps_per_turn']} | {s['generated_tokens_per_turn']} "
            f"| {s['seconds_per_turn_mean']} / {s['seconds_per_turn_median']} |"
        )
    return "\n".join(lines)


# -- the server and the configurations ----------------------------------------------------------------------------


def server_defaults(url: str) -> dict[str, Any]:
    """llama.cpp's own default for each setting in CANONICAL, as the server reports them."""
    with urllib.request.urlopen(f"{url}/props", timeout=30) as resp:
        params = json.load(resp)["default_generation_settings"]["params"]
    return {key: round(params[key], 4) if isinstance(params[key], float) else params[key] for key in CANONICAL}


def parse_config(text: str, server: dict[str, Any]) -> Config:
    if text == "default":
        return Config("default", None)
    if text == "server":
        return Config("server", dict(server))
    name, sep, raw = text.partition("=")
    if not sep:
        raise SystemExit(
            f"--config {text!r}: use default, server, or NAME=JSON (for example 'dry={{\"dry_multiplier\": 0.8}}')"
        )
    try:
        given = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"--config {name}: the settings are not JSON ({exc})") from None
    if not isinstance(given, dict):
        raise SystemExit(f"--config {name}: the settings must be a JSON object of sampling settings")
    return Config(name, {**server, **given})


@contextlib.contextmanager
def llama_server(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    from memgpt_backend_llamacpp.backend import LlamaCppBackend

    server = LlamaCppBackend.start_embedded()
    try:
        yield server.endpoint
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running llama-server to use (default: start one like the embedded default)")
    parser.add_argument("--runs", type=int, default=5, help="fresh agents per configuration (default 5)")
    parser.add_argument(
        "--config",
        action="append",
        help="default | server | NAME=JSON (repeatable; default: default)",
    )
    parser.add_argument(
        "--wrapper", action="append", help="prompt wrapper (repeatable; default: auto-grammar, the embedded default's)"
    )
    parser.add_argument(
        "--prompts",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="configuration NAME reads system.txt, persona_default.txt, human_default.txt from DIR where present",
    )
    parser.add_argument("--seed", type=int, default=1, help="run i samples with seed SEED+i; -1 for random seeds")
    parser.add_argument("--turn-timeout", type=float, default=600, help="seconds one turn may take")
    parser.add_argument("--facts", type=Path, default=FACTS, help="the facts file (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="write every turn and the summaries to this JSON file")
    args = parser.parse_args()

    script = Script.load(args.facts)
    signal.signal(signal.SIGALRM, _alarm)
    wrappers = args.wrapper or ["auto-grammar"]
    with llama_server(args.url) as url:
        server = server_defaults(url)
        configs = [parse_config(text, server) for text in args.config or ["default"]]
        for spec in args.prompts:
            name, _, folder = spec.partition("=")
            chosen = [c for c in configs if c.name == name]
            if not chosen or not Path(folder).is_dir():
                raise SystemExit(f"--prompts {spec!r}: give NAME=DIR, NAME one of the configurations, DIR a folder")
            chosen[0].prompts = Path(folder)
        load_before = os.getloadavg()[0]
        started = time.time()
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {(c.name, w): [] for c in configs for w in wrappers}
        for run in range(1, args.runs + 1):
            seed = None if args.seed < 0 else args.seed + run
            for wrapper in wrappers:
                for config in configs:
                    runs[(config.name, wrapper)].append(
                        one_run(url, wrapper, config, script, run, seed, args.turn_timeout)
                    )
        results = [
            {
                "config": name,
                "wrapper": wrapper,
                "sampling": next(c.sampling for c in configs if c.name == name),
                "prompts": str(next(c.prompts for c in configs if c.name == name) or "shipped"),
                "summary": summarise(done),
                "runs": done,
            }
            for (name, wrapper), done in runs.items()
        ]
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "server": url if args.url else "started like the embedded default",
        "server_defaults": server,
        "load1_before": load_before,
        "load1_after": os.getloadavg()[0],
        "wall_seconds": round(time.time() - started, 1),
        "results": results,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(markdown(results, len(script.facts)))
    print(
        f"\n{args.runs} runs of {len(script.messages)} messages per row; load average {load_before:.1f} before, "
        f"{report['load1_after']:.1f} after; {report['wall_seconds']:.0f} s in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
