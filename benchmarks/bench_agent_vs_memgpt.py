"""Side by side: our agent (`memgpt send`) and the original MemGPT (pymemgpt) on one llama-server, same 10 messages.

Starts its own llama-server (SmolLM2-135M-Instruct, ``--ctx`` 8192, one slot) on a free loopback port and a recording
proxy in front of it (benchmarks/peer/proxy.py), so both tools are measured from the same place: the prompt tokens
the server evaluated (``timings.prompt_n``: what its prompt cache did not cover), tokens generated, and the status of
every completion. Then, for each tool and each run, a fresh agent hears the 10 scripted messages of
benchmarks/peer/messages.json, one user turn each.

- pymemgpt runs in its own virtualenv (benchmarks/peer/setup.sh), driven by benchmarks/peer/drive_pymemgpt.py.
- ``ours-run`` holds one agent session for all the messages, as ``memgpt run`` does (benchmarks/peer/drive_ours.py),
  which is how the pymemgpt driver holds its agent; ``ours`` runs one ``memgpt send --agent NAME --json`` process per
  message, so its seconds include a process start each turn. Both get a fresh ``MEMGPT_HOME`` per run.

A turn fails when no reply reached the user: an exception or error, no successful ``send_message``, the step cap, or
the per-turn time limit. Rows go to ``--out`` as JSON lines; the summary table is printed as Markdown.

    .venv/bin/python benchmarks/bench_agent_vs_memgpt.py --runs 3 --tools pymemgpt-0.3.25,ours
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = ROOT / "benchmarks" / "peer"
SCRATCH = ROOT / ".bench" / "peer"
MESSAGES = PEER_DIR / "messages.json"

sys.path.insert(0, str(PEER_DIR))
from proxy import Proxy  # noqa: E402 - a sibling script, not a package
from turns import calls_in, turn_row, write_row  # noqa: E402

PEERS = {
    # tool name: (pymemgpt version, its virtualenv, wrapper)
    "pymemgpt-0.3.25": ("0.3.25", SCRATCH / "venv325", "chatml-grammar"),
    "pymemgpt-0.2.11": ("0.2.11", SCRATCH / "venv", "airoboros-l2-70b-2.1-grammar"),
}


VARIANTS = {
    # ours-run with levers off, for each lever's share (benchmarks/peer/drive_ours.py flags)
    "ours-run": [],
    "ours-run-noforce": ["--no-forced-text"],
    "ours-run-nostream": ["--no-stream"],
    "ours-run-plain": ["--no-forced-text", "--no-stream"],
    "ours-run-nobound": ["--thoughts-max-chars", "0"],
    "ours-run-jump12": ["--min-jump", "12"],
    "ours-run-none": ["--no-forced-text", "--no-stream", "--thoughts-max-chars", "0"],
    # the agent's code as installed in --base-venv (an older commit), for the before/after rows
    "ours-run-base": [],
}
"""A tool name may end in ``@SERVER`` to run on one of the ``--server`` llama-servers instead of the default one."""


def loopback_env() -> dict[str, str]:
    """The environment for a child: loopback traffic must never go through a proxy from the environment."""
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run_peer(tool: str, run: int, proxy_url: str, out: Path, args: argparse.Namespace) -> None:
    version, venv, wrapper = PEERS[tool.split("@")[0]]
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{tool}: no virtualenv at {venv}; run benchmarks/peer/setup.sh first")
    home = SCRATCH / "homes" / f"{tool}-run{run}-{int(time.time())}"
    log = SCRATCH / "logs" / f"{tool}-run{run}-{int(time.time())}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    run_driver(
        python,
        "drive_pymemgpt.py",
        run,
        proxy_url,
        out,
        args,
        log,
        loopback_env(),
        ["--version", version, "--wrapper", wrapper, "--home", str(home), "--max-steps", str(args.max_steps)]
        + (["--tool", tool.replace("-", " ", 1)] if "@" in tool else []),
    )


def run_driver(
    python: Path,
    script: str,
    run: int,
    proxy_url: str,
    out: Path,
    args: argparse.Namespace,
    log: Path,
    env: dict[str, str],
    extra: list[str],
) -> None:
    """One driver script (benchmarks/peer/drive_*.py) for one run of the messages, its output to ``log``."""
    cmd = [
        str(python),
        str(PEER_DIR / script),
        "--proxy",
        proxy_url,
        "--ctx",
        str(args.ctx),
        "--messages",
        str(MESSAGES),
        "--run",
        str(run),
        "--out",
        str(out),
        "--turn-timeout",
        str(args.turn_timeout),
        *extra,
    ]
    with open(log, "w") as fh:
        # The driver caps each turn itself; this outer limit only guards against a hung interpreter.
        subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=args.turn_timeout * 12 + 300, check=False
        )


def proxy_count(proxy: Proxy) -> int:
    return len(proxy.recorder)


def agent_version() -> str:
    """The commit our agent ran at, with "+dirty" when memgpt_core/ has uncommitted edits (it is installed editable)."""
    try:
        # The last commit that touched the code under test (other helpers' benchmark or docs commits do not count).
        head = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "memgpt_core", "plugins"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "memgpt_core", "plugins"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return head.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_ours_in_process(run: int, proxy: Proxy, out: Path, args: argparse.Namespace, tool: str = "") -> None:
    """One process for all 10 messages, as `memgpt run` holds the agent (benchmarks/peer/drive_ours.py)."""
    home = SCRATCH / "homes" / f"ours-run-run{run}-{int(time.time())}"
    home.mkdir(parents=True, exist_ok=True)
    env = loopback_env()
    env["MEMGPT_HOME"] = str(home)
    env["BENCH_AGENT_VERSION"] = agent_version()
    python = ROOT / ".venv" / "bin" / "python"
    if tool.split("@")[0] == "ours-run-base":
        # An older commit, installed in a virtualenv of its own (editable installs cannot be shadowed by PYTHONPATH).
        if not args.base_venv:
            raise SystemExit("ours-run-base needs --base-venv: a virtualenv with the older commit installed")
        python = Path(args.base_venv) / "bin" / "python"
        env["BENCH_AGENT_VERSION"] = "base"
    log = SCRATCH / "logs" / f"ours-run-run{run}-{int(time.time())}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    variant = tool.split("@")[0]
    extra = ["--wrapper", args.our_wrapper, "--tool", tool or args.ours_run_name]
    extra += VARIANTS.get(variant, [])
    if args.our_max_tokens:
        extra += ["--max-tokens", str(args.our_max_tokens)]
    run_driver(python, "drive_ours.py", run, proxy.url, out, args, log, env, extra)


def run_ours(run: int, proxy: Proxy, out: Path, args: argparse.Namespace) -> None:
    """One `memgpt send --json` process per user message, against a fresh MEMGPT_HOME."""
    home = SCRATCH / "homes" / f"ours-run{run}-{int(time.time())}"
    home.mkdir(parents=True, exist_ok=True)
    env = loopback_env()
    env["MEMGPT_HOME"] = str(home)
    memgpt = ROOT / ".venv" / "bin" / "memgpt"
    messages = json.loads(MESSAGES.read_text())
    log = SCRATCH / "logs" / f"ours-run{run}-{int(time.time())}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as logfh:
        for turn, text in enumerate(messages, start=1):
            start_index = proxy_count(proxy)
            cmd = [
                str(memgpt),
                "send",
                "--agent",
                f"bench{run}",
                "--json",
                "--backend",
                "llamacpp",
                "--endpoint",
                proxy.url,
                "--model",
                args.our_wrapper,
                "--context-window",
                str(args.ctx),
                *(["--max-tokens", str(args.our_max_tokens)] if args.our_max_tokens else []),
                text,
            ]
            started = time.monotonic()
            reason = error = None
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.turn_timeout)
                stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
            except subprocess.TimeoutExpired as exc:
                stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
                rc, reason = None, "turn timeout"
            seconds = time.monotonic() - started
            logfh.write(f"--- turn {turn} rc={rc}\n$ {' '.join(cmd)}\n{stdout}\n[stderr]\n{stderr}\n")
            events = []
            for line in stdout.splitlines():
                line = line.strip()
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        events.append(json.loads(line))
            calls = calls_in(events)
            errors = [ev for ev in events if ev.get("type") == "error"]
            replies = [ev for ev in events if ev.get("type") == "assistant_message"]
            if reason is None and rc != 0:
                reason, error = "exit status", (stderr.strip().splitlines() or [f"exit {rc}"])[-1][:500]
            if reason is None and errors:
                reason, error = "error event", str(errors[0].get("message") or errors[0])[:500]
            if reason is None and not replies:
                reason = "no reply"
            records = proxy.recorder.since(start_index)
            row = turn_row(
                tool="ours",
                wrapper=args.our_wrapper,
                run=run,
                turn=turn,
                reason=reason,
                error=error,
                seconds=seconds,
                calls=calls,
                records=records,
                version=agent_version(),
                steps=sum(1 for r in records if r.get("path", "").startswith("/completion")),
                replies=[ev.get("text") for ev in replies],
            )
            write_row(row, str(out))


def summarise(rows: list[dict], tools: list[str]) -> str:
    """The Markdown table: one line per tool."""
    lines = [
        "| tool / wrapper | runs | failed turns | median s per answered turn | median prompt tokens evaluated per turn "
        "| median tokens generated per turn | completions per turn | memory calls made / succeeded "
        "| median s to the first visible character of a reply |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tool in tools:
        mine = [r for r in rows if r["tool"] == (tool.replace("-", " ", 1) if tool.startswith("pymemgpt") else tool)]
        if not mine:
            continue
        answered = [r for r in mine if not r["failed"]]
        runs = len({r["run"] for r in mine})
        reasons: dict[str, int] = {}
        for r in mine:
            if r["failed"]:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        why = ", ".join(f"{n} {k}" for k, n in sorted(reasons.items())) if reasons else ""
        med_s = f"{statistics.median(r['seconds'] for r in answered):.2f}" if answered else "–"
        med_p = statistics.median(r["prompt_n"] for r in mine)
        med_g = statistics.median(r["predicted_n"] for r in mine)
        per_turn = sum(
            1 for r in mine for rec in r["records"] if str(rec.get("path", "")).startswith("/completion")
        ) / len(mine)
        visible = [r["first_visible"] for r in answered if r.get("first_visible") is not None]
        med_v = f"{statistics.median(visible):.2f}" if visible else "–"
        made = sum(r["memory_calls"] for r in mine)
        ok = sum(r["memory_calls_ok"] for r in mine)
        lines.append(
            f"| {tool} `{mine[0]['wrapper']}` | {runs} | {len(mine) - len(answered)}/{len(mine)}"
            f"{f' ({why})' if why else ''} | {med_s} | {med_p:.0f} | {med_g:.0f} | {per_turn:.1f} | {made} / {ok} "
            f"| {med_v} |"
        )
    return "\n".join(lines)


def diagnose(rows: list[dict], tools: list[str]) -> str:
    """Why turns failed and where tokens went: one block per tool, from the proxy's records and the calls."""
    blocks = []
    for tool in tools:
        name = tool.replace("-", " ", 1) if tool.startswith("pymemgpt") else tool
        mine = [r for r in rows if r["tool"] == name]
        if not mine:
            continue
        records = [rec for r in mine for rec in r["records"] if str(rec.get("path", "")).startswith("/completion")]
        statuses: dict[str, int] = {}
        stops: dict[str, int] = {}
        for rec in records:
            statuses[str(rec.get("status"))] = statuses.get(str(rec.get("status")), 0) + 1
            if rec.get("stop_type"):
                stops[str(rec["stop_type"])] = stops.get(str(rec["stop_type"]), 0) + 1
        names: dict[str, list[int]] = {}
        for r in mine:
            for c in r["calls"]:
                made_ok = names.setdefault(str(c["name"]), [0, 0])
                made_ok[0] += 1
                made_ok[1] += 1 if c["ok"] else 0
        predicted = [int(rec.get("predicted_n") or 0) for rec in records if rec.get("predicted_n") is not None]
        first = [r["prompt_n"] for r in mine if r["turn"] == 1]
        later = [r["prompt_n"] for r in mine if r["turn"] > 1]
        cuts = [rec for rec in records if rec.get("cut")]
        errors = sorted({str(r["error"])[:160] for r in mine if r.get("error")})
        # Wall time not spent waiting for the server: process start-up, storage, prompt building, parsing.
        outside = [r["seconds"] - sum(float(rec.get("seconds") or 0) for rec in r["records"]) for r in mine]
        model_s = [sum(float(rec.get("seconds") or 0) for rec in r["records"]) for r in mine if not r["failed"]]
        blocks.append(
            "\n".join(
                [
                    f"{tool}:",
                    f"  completions: {len(records)}; HTTP status: {statuses}; stop types: {stops}",
                    f"  cut by the proxy: {len(cuts)} (decoded before the cut: {[c.get('cut_decoded') for c in cuts]})",
                    f"  tokens generated per completion: median {statistics.median(predicted) if predicted else '-'}, "
                    f"max {max(predicted) if predicted else '-'}",
                    f"  prompt tokens evaluated, turn 1: median {statistics.median(first) if first else '-'}; "
                    f"turns 2-10: median {statistics.median(later) if later else '-'}",
                    f"  calls (made, returned OK): {names}",
                    f"  seconds per turn outside the server: median {statistics.median(outside):.2f}; "
                    f"server seconds per answered turn: median "
                    f"{statistics.median(model_s) if model_s else float('nan'):.2f}",
                    f"  failure reasons: {[(r['run'], r['turn'], r['reason']) for r in mine if r['failed']]}",
                    *(f"  error: {e}" for e in errors),
                ]
            )
        )
    return "\n".join(blocks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tools",
        default="pymemgpt-0.3.25,ours-run,ours",
        help="comma-separated: pymemgpt-0.3.25, pymemgpt-0.2.11, ours-run (one process, as `memgpt run`), "
        "ours (one `memgpt send` per message)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ctx", type=int, default=8192)
    # One thread: on this shared 2-core machine other llama-servers run too, and llama.cpp's threads spin-wait on
    # each other, so two threads per server ran ~8x slower than one (measured: 4.9 vs 32-40 tokens/s generated).
    parser.add_argument("--threads", type=int, default=1, help="llama-server --threads")
    parser.add_argument("--upstream", help="reuse a running llama-server instead of starting one")
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="another llama-server, started with these extra flags (for example spec='--spec-type ngram-simple'); "
        "a tool named TOOL@NAME runs on it. Repeatable.",
    )
    parser.add_argument("--out", default=str(SCRATCH / "results" / "vs_memgpt.jsonl"))
    parser.add_argument("--our-wrapper", default="chatml-grammar")
    parser.add_argument(
        "--base-venv",
        help="for the ours-run-base tool: a virtualenv with an older commit installed "
        "(git worktree add DIR COMMIT; python -m venv V; V/bin/pip install -e DIR -e DIR/plugins/...)",
    )
    parser.add_argument("--our-max-tokens", type=int, help="our agent's output cap per step (default: the agent's)")
    parser.add_argument("--ours-run-name", default="ours-run", help="tool name for the ours-run rows")
    parser.add_argument("--max-steps", type=int, default=10, help="steps per user turn before the turn counts failed")
    parser.add_argument("--turn-timeout", type=float, default=240.0, help="seconds per user turn")
    parser.add_argument("--request-timeout", type=float, default=180.0, help="seconds per completion (proxy cut)")
    parser.add_argument("--summary-only", action="store_true", help="only print the table from --out")
    parser.add_argument("--merge", nargs="*", default=[], help="more result files to include in the table")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        import shlex

        from memgpt_backend_llamacpp.server import LlamaServer

        servers: list[LlamaServer] = []
        proxies: dict[str, Proxy] = {}
        upstreams: dict[str, str] = {}
        wanted = {"": args.upstream or ""}
        for spec in args.server:
            name, _, flags = spec.partition("=")
            wanted[name] = flags
        try:
            for name, flags in wanted.items():
                upstream = args.upstream if not name and args.upstream else None
                if upstream is None:
                    extra = shlex.split(flags) if name else []
                    server = LlamaServer(ctx_size=args.ctx, parallel=1, threads=args.threads, extra_args=extra).start()
                    servers.append(server)
                    upstream = server.url
                    print(f"llama-server {name or 'default'} {server.url} ctx {args.ctx} {extra}", file=sys.stderr)
                upstreams[name] = upstream
                proxies[name] = Proxy(upstream, request_timeout=args.request_timeout).start()
            for run in range(1, args.runs + 1):
                for tool in tools:
                    at = tool.partition("@")[2]
                    proxy, upstream = proxies[at], upstreams[at]
                    print(f"== {tool} run {run}", file=sys.stderr, flush=True)
                    base = tool.split("@")[0]
                    if base == "ours":
                        run_ours(run, proxy, out, args)
                    elif base in VARIANTS or base == args.ours_run_name:
                        run_ours_in_process(run, proxy, out, args, tool)
                    else:
                        run_peer(tool, run, proxy.url, out, args)
                    # No state may leak from one run to the next through the server's prompt cache.
                    req = urllib.request.Request(f"{upstream}/slots/0?action=erase", method="POST")
                    with contextlib.suppress(OSError):
                        urllib.request.urlopen(req, timeout=10).read()
        finally:
            for proxy in proxies.values():
                proxy.stop()
            for server in servers:
                server.stop()
    rows = []
    for path in [out, *map(Path, args.merge)]:
        if path.exists():
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print(summarise(rows, tools))
    print()
    print(diagnose(rows, tools))
    return 0


if __name__ == "__main__":
    sys.exit(main())
