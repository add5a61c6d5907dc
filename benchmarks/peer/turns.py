"""What every driver of the side-by-side benchmark shares: the proxy's records, the turn timeout, and the row format.

Standard library only: drive_pymemgpt.py imports it from pymemgpt's own virtualenv.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from typing import Any

NOT_MEMORY = {"send_message", "pause_heartbeats"}


class TurnTimeout(Exception):
    """The turn ran past --turn-timeout."""


def alarm(signum: int, frame: object) -> None:
    """A SIGALRM handler that ends the turn."""
    raise TurnTimeout()


def proxy_count(proxy: str) -> int:
    with urllib.request.urlopen(f"{proxy}/__proxy/count", timeout=10) as resp:
        return int(json.load(resp)["count"])


def proxy_records(proxy: str, since: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{proxy}/__proxy/records?since={since}", timeout=10) as resp:
        return list(json.load(resp))


def calls_in(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our agent's events (``memgpt send --json`` lines) as function calls, each with whether it returned OK (a
    send_message is OK when its message was shown)."""
    calls: list[dict[str, Any]] = []
    for event in events:
        kind = event.get("type")
        if kind == "function_call":
            calls.append({"name": event.get("name"), "arguments": event.get("arguments"), "ok": None})
        elif kind == "function_return" and calls:
            calls[-1]["ok"] = bool(event.get("ok"))
        elif kind == "assistant_message" and calls and calls[-1]["name"] == "send_message":
            calls[-1]["ok"] = True
    return calls


def turn_row(
    *,
    tool: str,
    wrapper: str,
    run: int,
    turn: int,
    reason: str | None,
    error: str | None,
    seconds: float,
    calls: list[dict[str, Any]],
    records: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """One turn's row: what happened, and what the server evaluated and generated for it (from the proxy)."""
    return {
        "tool": tool,
        "wrapper": wrapper,
        "run": run,
        "turn": turn,
        "failed": reason is not None,
        "reason": reason,
        "error": error,
        "seconds": round(seconds, 3),
        "load1": os.getloadavg()[0],
        "calls": calls,
        "memory_calls": sum(1 for c in calls if c["name"] not in NOT_MEMORY),
        "memory_calls_ok": sum(1 for c in calls if c["name"] not in NOT_MEMORY and c["ok"]),
        "prompt_n": sum(int(r.get("prompt_n") or 0) for r in records),
        "predicted_n": sum(int(r.get("predicted_n") or 0) for r in records),
        "requests": len(records),
        "records": records,
        **extra,
    }


def write_row(row: dict[str, Any], out: str) -> None:
    """Append the row to ``out`` and say one line about it on stderr."""
    with open(out, "a", encoding="utf-8") as sink:
        sink.write(json.dumps(row) + "\n")
    print(
        f"[{row['tool']} run {row['run']} turn {row['turn']}] failed={row['failed']} reason={row['reason']} "
        f"s={row['seconds']} prompt_n={row['prompt_n']} calls={[c['name'] for c in row['calls']]}",
        file=sys.stderr,
        flush=True,
    )
