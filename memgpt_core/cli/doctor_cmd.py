"""``memgpt doctor``: check a backend and wrapper before chatting: reachability, context, grammar, speed, parse rate.

The report is short, one line per check, and every failure carries the fix. The exit status is 1 when a check
failed, so scripts and CI can use it. Heavy modules (pydantic, requests, the agent) are imported inside the command.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from memgpt_core.backend import Backend, EmbeddedServer
    from memgpt_core.models import Completion

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
PARSE_PASS = 0.8
"""The share of readable agent-style answers below which the parse-rate check fails (a warning below 100%)."""
SLOW = 2.0
"""Tokens per second below which an agent step takes minutes: a warning, not a failure."""
AUTO = "auto-grammar"
"""The wrapper that renders the model's own chat template; doctor measures it beside the chosen one."""

# Five first messages of a new conversation, each inviting a different function; short, so the check stays quick.
AGENT_MESSAGES: tuple[str, ...] = (
    "hi! I'm Chad, I work as a baker.",
    "please remember that my favourite colour is green",
    "what did we talk about last week? look it up",
    "write down in your notebook that my sister's birthday is on May 3rd",
    "how are you today?",
)


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: str
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    backend: str
    endpoint: str
    wrapper: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(check.status == FAIL for check in self.checks)

    def add(self, check: Check, echo: Callable[[Check], None]) -> Check:
        self.checks.append(check)
        echo(check)
        return check


@click.command()
@click.option(
    "--backend",
    "--model-endpoint-type",
    "backend",
    help="Backend type (`memgpt plugins list` shows them); or BACKEND_TYPE.",
)
@click.option("--endpoint", "--model-endpoint", "endpoint", help="The server's base URL (else OPENAI_API_BASE).")
@click.option("--api-key", "api_key", help="Key for a server behind --api-key or a proxy (else MEMGPT_API_KEY).")
@click.option(
    "--model",
    "--model-wrapper",
    "wrapper",
    help="The prompt wrapper to check (default: the config file's, else the rule).",
)
@click.option(
    "--model-name", help="The model the server should use, for servers with several (else MEMGPT_MODEL_NAME)."
)
@click.option("--context-window", type=click.IntRange(min=256), help="The context size the agent will budget for.")
@click.option("--model-path", help="A GGUF file for the embedded server (else MEMGPT_MODEL_PATH, else SmolLM2).")
@click.option("--samples", type=click.IntRange(1, 20), default=5, show_default=True, help="Agent-style generations.")
@click.option("--max-tokens", type=click.IntRange(16, 2048), default=192, show_default=True, help="Cap per answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def doctor(
    backend: str | None,
    endpoint: str | None,
    api_key: str | None,
    wrapper: str | None,
    model_name: str | None,
    context_window: int | None,
    model_path: str | None,
    samples: int,
    max_tokens: int,
    as_json: bool,
) -> None:
    """Check a backend and wrapper before chatting: reachability, context, grammar, speed, parse rate."""
    from memgpt_core import settings_file
    from memgpt_core.config import Choices, choose, connect
    from memgpt_core.endpoints import redact
    from memgpt_core.errors import MemGPTError

    flags = Choices(
        backend=backend,
        endpoint=endpoint,
        model_name=model_name,
        wrapper=wrapper,
        context_window=context_window,
        model_path=model_path,
    )
    chosen = choose(flags, file=settings_file.load(), api_key=api_key)  # flags, variables, config file, default
    settings, wrapper = chosen.backend, chosen.wrapper
    secret = settings.api_key

    def say(text: str = "") -> None:
        if not as_json:
            click.echo(redact(text, secret))  # the key must never reach the screen, whatever an error quoted

    def echo(check: Check) -> None:
        say(f"  {check.status:<5} {check.name:<11} {check.detail}")
        if check.fix and check.status in (FAIL, WARN):
            say(f"  {'':<5} {'':<11} fix: {check.fix}")

    label = settings.backend or "embedded llama.cpp server"
    report = Report(backend=label, endpoint=settings.endpoint or "(started by memgpt)")
    try:
        with connect(settings) as (live, server):
            report.backend, report.endpoint = live.name, live.endpoint
            say(f"memgpt doctor: {live.name} backend at {live.endpoint}")
            _run_checks(report, live, server, settings.context_window, wrapper, samples, max_tokens, echo, say)
    except MemGPTError as exc:
        # Could not even start (a bad URL, an embedded server that will not start): that is the reachability check.
        report.add(Check("reachable", FAIL, exc.message, exc.fix), echo)
    if as_json:
        click.echo(redact(json.dumps(_as_json(report), indent=2), secret))
    else:
        verdict = "some checks failed" if report.failed else "all checks passed"
        say(f"{verdict}.")
    if report.failed:
        raise SystemExit(1)


def _run_checks(
    report: Report,
    backend: Backend,
    server: EmbeddedServer | None,
    configured: int | None,
    wrapper_name: str | None,
    samples: int,
    max_tokens: int,
    echo: Callable[[Check], None],
    say: Callable[[str], None],
) -> None:
    reach = report.add(_check_reachable(backend), echo)
    if reach.status == FAIL:
        return
    window = report.add(_check_context(backend, configured), echo).data.get("window")
    report.add(_check_grammar(backend), echo)
    report.add(_check_speed(backend), echo)
    from memgpt_core import plugins
    from memgpt_core.errors import MemGPTError
    from memgpt_core.selection import choose_wrapper_name

    name = choose_wrapper_name(wrapper_name, backend, server.wrapper if server else None)  # it has met its server
    try:
        plugins.get_wrapper(name)
    except MemGPTError as exc:  # an unknown --model name: say which wrappers exist
        report.add(Check("parse rate", FAIL, exc.message, exc.fix), echo)
        return
    report.wrapper = name
    for check in _check_parse_rate(backend, name, window, samples, max_tokens):
        report.add(check, echo)


# -- the checks ---------------------------------------------------------------------------------------------------


def _check_reachable(backend: Backend) -> Check:
    from memgpt_core.errors import BackendError, EmptyCompletionError
    from memgpt_core.models import CompletionRequest

    try:
        backend.wait_until_ready(timeout=120)
        model = backend.model_name()
        if model == "None":  # text-generation-webui's name for "nothing loaded"
            return Check(
                "reachable",
                FAIL,
                f"the server answers, but has no model loaded ({backend.endpoint})",
                "load a model in the server's UI (text-generation-webui: the Model tab), then run memgpt doctor again",
            )
        answered = "answered a 1-token completion"
        try:
            backend.complete(CompletionRequest(prompt="Hello", max_tokens=1))
        except EmptyCompletionError:  # the model ended at once: the server works all the same
            answered = "answered a 1-token completion (empty: the model ended it at once)"
    except BackendError as exc:
        return Check("reachable", FAIL, exc.message, exc.fix)
    shown = f"model {model}" if model else "the server does not name its model"
    return Check("reachable", OK, f"{answered}; {shown}", data={"model": model})


def _check_context(backend: Backend, configured: int | None) -> Check:
    """The context size (see _context_figures), and how the agent counts prompt tokens on this server: the server's
    own tokenizer where the backend has one, else the documented estimate."""
    from memgpt_core.agent.budget import BYTES_PER_TOKEN_ESTIMATE

    check = _context_figures(backend, configured)
    exact = backend.capabilities.exact_tokenizer
    check.detail += (
        "; token counts exact (the server's tokenizer)"
        if exact
        else f"; token counts estimated (1 per {BYTES_PER_TOKEN_ESTIMATE} bytes of UTF-8: no tokenizer on this server)"
    )
    check.data["exact_tokens"] = exact
    return check


def _context_figures(backend: Backend, configured: int | None) -> Check:
    from memgpt_core.agent.budget import DEFAULT_CONTEXT_WINDOW
    from memgpt_core.errors import BackendError

    server = None
    if backend.capabilities.server_context:
        try:
            server = backend.context_window()
        except BackendError as exc:
            return Check("context", WARN, f"could not read the server's context size: {exc.message}", exc.fix)
    data: dict[str, Any] = {"server": server, "configured": configured}
    if server and configured:
        if configured > server:
            data["window"] = server
            return Check(
                "context",
                FAIL,
                f"--context-window is {configured} tokens but the server's context is {server}",
                f"use --context-window {server} (or less), or restart the server with a context of {configured}",
                data,
            )
        data["window"] = configured
        spare = "" if configured == server else f"; the server has {server}, so up to {server} is possible"
        return Check("context", OK, f"configured {configured} tokens fits the server's {server}{spare}", data=data)
    if server:
        data["window"] = server
        return Check("context", OK, f"the server's context is {server} tokens; the agent will use that", data=data)
    if configured:
        data["window"] = configured
        return Check(
            "context",
            OK,
            f"configured {configured} tokens; this server does not report its context, so make sure its "
            "context length is at least that",
            data=data,
        )
    data["window"] = DEFAULT_CONTEXT_WINDOW
    return Check(
        "context",
        WARN,
        f"this server does not report its context, and none is configured; the agent assumes {DEFAULT_CONTEXT_WINDOW}",
        "pass --context-window with the context length the model was loaded with (for example 8192)",
        data,
    )


# A grammar whose only answers no model would write unprompted: obeying it proves the server applied it.
_GBNF_PROBE = 'root ::= "zq17" | "xv42"'
_SCHEMA_PROBE = json.dumps({"type": "string", "enum": ["zq17", "xv42"]})


def _check_grammar(backend: Backend) -> Check:
    from memgpt_core.errors import BackendError
    from memgpt_core.models import CompletionRequest, Grammar

    formats = backend.capabilities.grammar_formats
    if not formats:
        return Check(
            "grammar",
            SKIP,
            f"the {backend.name} backend accepts no grammar; answers are repaired after the fact instead",
        )
    fmt = "gbnf" if "gbnf" in formats else "json_schema"
    grammar = Grammar(format=fmt, text=_GBNF_PROBE if fmt == "gbnf" else _SCHEMA_PROBE)
    try:
        done = backend.complete(
            CompletionRequest(prompt="Say hello to the user:", max_tokens=12, grammar=grammar, sampling={"seed": 1})
        )
    except BackendError as exc:
        return Check("grammar", FAIL, f"a {fmt} grammar was refused: {exc.message}", exc.fix)
    text = done.text.strip()
    if fmt == "json_schema":
        with contextlib.suppress(ValueError):
            text = json.loads(text)
    if text in ("zq17", "xv42"):
        return Check("grammar", OK, f"a {fmt}-constrained generation obeyed the grammar")
    return Check(
        "grammar",
        FAIL,
        f"the server ignored the {fmt} grammar (it answered {done.text[:60]!r})",
        f"check that this really is a {backend.name} server (BACKEND_TYPE) and that its version and model loader "
        "support grammars; meanwhile use a wrapper without -grammar",
    )


# Two prompts for the speed probe: if a model ends its answer to the first at once (a backend whose server has no
# ban-EOS setting), the second gives it another chance to write something that can be timed.
SPEED_PROMPTS: tuple[str, ...] = (
    "Write a few sentences about a lighthouse keeper.\n",
    "Once upon a time, in a small village by the sea, there lived",
)
SPEED_TOKENS = 32


def _check_speed(backend: Backend) -> Check:
    """Time one generation of SPEED_TOKENS tokens with end-of-text banned, so the figure measures generation whatever
    the model would say. An empty answer (a server that cannot ban end-of-text) is retried once with another prompt,
    then reported as a warning: the server did answer, so it is not a failure."""
    from memgpt_core.errors import BackendError, EmptyCompletionError
    from memgpt_core.models import CompletionRequest

    empty: list[str] = []
    for prompt in SPEED_PROMPTS:
        request = CompletionRequest(prompt=prompt, max_tokens=SPEED_TOKENS, sampling={"seed": 1}, ban_eos=True)
        began = time.perf_counter()
        try:
            done = backend.complete(request)
        except EmptyCompletionError as exc:
            empty.append(exc.message)
            continue
        except BackendError as exc:
            return Check("speed", FAIL, exc.message, exc.fix)
        wall = time.perf_counter() - began
        if done.text.strip() or (done.timings and done.timings.predicted_n):
            return _speed_result(done, wall, request.max_tokens)
        empty.append("the answer was empty")
    return Check(
        "speed",
        WARN,
        f"could not measure: the server answered, but with an empty completion to {len(SPEED_PROMPTS)} prompts "
        f"(the model ended its answers at once; {empty[-1]})",
        "nothing to fix for the speed itself; if chat answers come back empty too, check that the wrapper (--model) "
        "matches the model's prompt format",
        {"tokens_per_second": None},
    )


def _speed_result(done: Completion, wall: float, cap: int) -> Check:
    timings = done.timings
    if timings and timings.predicted_n and timings.predicted_ms:
        rate = timings.predicted_n / (timings.predicted_ms / 1000.0)
        how = f"server timings, {timings.predicted_n} tokens"
    else:
        tokens = done.completion_tokens
        source = "counted by the server"
        if tokens is None and done.finish_reason == "length":
            tokens, source = cap, "generated up to the cap"
        elif tokens is None:
            tokens = max(1, len(done.text) // 4)
            source = "estimated at 4 characters per token"
        rate = tokens / wall if wall > 0 else 0.0
        how = f"wall clock incl. the prompt, {tokens} tokens {source}"
    detail = f"{rate:.1f} tokens/s ({how})"
    data = {"tokens_per_second": round(rate, 2)}
    if rate < SLOW:
        return Check(
            "speed",
            WARN,
            detail + "; an agent step of ~150 tokens will take over a minute",
            "use a smaller or more quantised model, offload layers to a GPU, or give the server more threads",
            data,
        )
    return Check("speed", OK, detail, data=data)


def _twin(name: str, backend: Backend) -> str | None:
    """The same wrapper with the grammar switched the other way, when installed and the backend can take a grammar."""
    from memgpt_core import plugins

    if not backend.capabilities.grammar:
        return None
    twin = name[: -len("-grammar")] if name.endswith("-grammar") else name + "-grammar"
    return twin if twin in plugins.get_wrappers() else None


def _rivals(name: str, backend: Backend) -> list[str]:
    """The wrappers measured beside ``name``: its twin with the grammar switched, and ``auto-grammar`` (the model's
    own chat template) where it is installed and the backend can read the template and take a grammar."""
    from memgpt_core import plugins

    rivals = [twin] if (twin := _twin(name, backend)) else []
    caps = backend.capabilities
    if caps.chat_template and caps.grammar and AUTO not in (name, *rivals) and AUTO in plugins.get_wrappers():
        rivals.append(AUTO)
    return rivals


def _check_parse_rate(
    backend: Backend, wrapper_name: str, window: int | None, samples: int, max_tokens: int
) -> list[Check]:
    chosen = _parse_rate(backend, wrapper_name, window, samples, max_tokens)
    if chosen.get("error"):
        return [Check("parse rate", FAIL, chosen["error"], chosen.get("fix"), chosen)]
    ok, total = chosen["readable"], chosen["total"]
    detail = f"{ok}/{total} agent-style answers readable with {wrapper_name}"
    data: dict[str, Any] = {"wrapper": chosen, "rivals": {}}
    best_name, best = wrapper_name, ok
    for rival_name in _rivals(wrapper_name, backend):
        rival = _parse_rate(backend, rival_name, window, samples, max_tokens)
        data["rivals"][rival_name] = rival
        if rival.get("error"):
            detail += f"; {rival_name} could not run ({rival['error']})"
            continue
        detail += f"; {rival['readable']}/{rival['total']} with {rival_name}"
        if rival["readable"] > best:
            best_name, best = rival_name, rival["readable"]
    rate = ok / total if total else 0.0
    if best_name != wrapper_name:
        data["recommended"] = best_name
    if rate >= 1.0:
        return [Check("parse rate", OK, detail, data=data)]
    cut_off = sum(1 for sample in chosen["samples"] if sample["finish_reason"] == "length" and not sample["readable"])
    if best_name != wrapper_name:
        fix = f"use --model {best_name}: it produced more readable calls on this server"
    elif cut_off:
        fix = (
            f"{cut_off} answer(s) ran into the {max_tokens}-token cap before the call was complete: "
            "raise --max-tokens (the agent's default cap is 512)"
        )
    elif backend.capabilities.grammar and not wrapper_name.endswith("-grammar"):
        fix = "use a -grammar wrapper (grammar sampling makes an unreadable call impossible), or a bigger model"
    else:
        fix = "use a bigger or less quantised model (Q5 or better), or another wrapper (--model)"
    if backend.name in ("lmstudio", "lmstudio-legacy"):
        fix += "; in LM Studio turn Automatic Prompt Formatting OFF (it wraps memgpt's prompt a second time)"
    first = chosen.get("first_failure")
    if first:
        detail += f"; first unreadable answer: {first}"
    return [Check("parse rate", FAIL if rate < PARSE_PASS else WARN, detail, fix, data)]


def _parse_rate(
    backend: Backend, wrapper_name: str, window: int | None, samples: int, max_tokens: int
) -> dict[str, Any]:
    """Run ``samples`` first steps of a new agent and count the answers the wrapper reads as a call.

    Each prompt is the one ``memgpt run`` sends for a new agent after the user's first message, built by the agent's
    own code (on a throw-away store), with the grammar the agent would ask for, and generated as a step generates it
    (``memgpt_core.agent.streaming.generate``: forced text appended).
    """
    import tempfile

    from memgpt_core import plugins
    from memgpt_core.agent.agent import Agent, AgentSettings
    from memgpt_core.agent.memory import load_block_text
    from memgpt_core.agent.streaming import generate
    from memgpt_core.errors import MemGPTError, ParseError
    from memgpt_core.models import CompletionRequest
    from memgpt_core.storage import Store

    readable = 0
    first_failure = None
    results = []
    grammar = None
    with tempfile.TemporaryDirectory(prefix="memgpt-doctor-") as scratch, Store(f"{scratch}/agents.db") as store:
        try:
            wrapper = plugins.get_wrapper(wrapper_name)
            record = store.create_agent(
                "doctor", persona=load_block_text("persona", None), human=load_block_text("human", None)
            )
            agent = Agent(store, record, backend, wrapper, AgentSettings(context_window=window, max_tokens=max_tokens))
        except MemGPTError as exc:
            return {"error": exc.message, "fix": exc.fix}
        for i in range(samples):
            try:
                prompt, grammar = agent.first_request(AGENT_MESSAGES[i % len(AGENT_MESSAGES)])
                request = CompletionRequest(
                    prompt=prompt,
                    max_tokens=max_tokens,
                    stop=list(wrapper.stop_sequences),
                    grammar=grammar,
                    sampling={"temperature": 0.7, "seed": 1000 + i},
                    # One cache key for every sample: a server with a prompt cache evaluates the shared part once.
                    cache_key="memgpt-doctor",
                    context_window=agent.window,
                )
                # Generated as a step generates it: the text the grammar forces is appended, not sampled.
                done, _ = generate(backend, request, forcing=agent.settings.forced_text, stream=agent.settings.stream)
            except MemGPTError as exc:
                return {"error": f"a first step with {wrapper_name} failed: {exc.message}", "fix": exc.fix}
            try:
                wrapper.parse(done.text, agent.functions, first_message=True)
                good, reason = True, None
            except ParseError as exc:
                good, reason = False, exc.reason
            readable += good
            results.append({"readable": good, "finish_reason": done.finish_reason, "reason": reason})
            if not good and first_failure is None:
                first_failure = f"{reason} ({' '.join(done.text.split())[:80]!r})"
    return {
        "wrapper": wrapper_name,
        "grammar": grammar.format if grammar else None,
        "readable": readable,
        "total": samples,
        "first_failure": first_failure,
        "samples": results,
    }


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "backend": report.backend,
        "endpoint": report.endpoint,
        "wrapper": report.wrapper,
        "ok": not report.failed,
        "checks": [
            {"name": c.name, "status": c.status.lower(), "detail": c.detail, "fix": c.fix, "data": c.data}
            for c in report.checks
        ],
    }
