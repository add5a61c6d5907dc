"""Drive our agent through the scripted user turns in one process, as `memgpt run` holds it between messages.

The counterpart of drive_pymemgpt.py: one session (``open_session``, what ``memgpt run`` opens), then
``Agent.user_message`` per scripted message, timed per turn, with the same turn timeout (SIGALRM) and the same row
format, including the proxy's records of what the server evaluated. The agent's own heartbeat cap bounds the steps.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from turns import TurnTimeout, alarm, calls_in, proxy_count, proxy_records, turn_row, write_row  # a sibling script


def run(args: argparse.Namespace) -> int:
    from memgpt_core.agent.session import SessionOptions, open_session

    version = os.environ.get("BENCH_AGENT_VERSION", "unknown")
    messages = json.loads(Path(args.messages).read_text())
    events: list[dict[str, Any]] = []
    options = SessionOptions(
        agent=f"bench{args.run}",
        backend="llamacpp",
        endpoint=args.proxy,
        wrapper=args.wrapper,
        context_window=args.ctx,
        max_tokens=args.max_tokens,
    )
    signal.signal(signal.SIGALRM, alarm)
    first_visible: list[float] = []

    def on_event(event: Any) -> None:
        # The first character of a reply the user can read: a streamed piece, or the whole reply when not streamed.
        if event.type in ("assistant_message_delta", "assistant_message") and not first_visible:
            first_visible.append(time.monotonic())
        if not event.type.endswith("_delta"):
            events.append(event.to_json())

    with open_session(options, on_event=on_event) as session:
        session.agent.settings.forced_text = not args.no_forced_text
        session.agent.settings.stream = not args.no_stream
        if args.min_jump is not None:
            from memgpt_core.agent import streaming

            streaming.MIN_JUMP = args.min_jump
        if args.thoughts_max_chars is not None:
            session.agent.settings.thoughts_max_chars = args.thoughts_max_chars or None
            session.agent.grammar, _ = session.agent._negotiate(session.agent.functions)
            session.agent._reply_only = None
        for turn, text in enumerate(messages, start=1):
            start_index = proxy_count(args.proxy)
            events.clear()
            first_visible.clear()
            reason = error = None
            started = time.monotonic()
            signal.alarm(int(args.turn_timeout))
            try:
                result = session.agent.user_message(text)
            except TurnTimeout:
                reason = "turn timeout"
            except Exception as exc:  # what `memgpt run` prints as an error before the next prompt
                reason, error = "exception", f"{type(exc).__name__}: {exc}"[:500]
                traceback.print_exc()
            finally:
                signal.alarm(0)
            seconds = time.monotonic() - started
            calls = calls_in(events)
            replies = [e.get("text") for e in events if e["type"] == "assistant_message"]
            if reason is None and not replies:
                reason = "no reply"
            records = proxy_records(args.proxy, start_index)
            row = turn_row(
                tool=args.tool,
                wrapper=args.wrapper,
                run=args.run,
                turn=turn,
                reason=reason,
                error=error,
                seconds=seconds,
                calls=calls,
                records=records,
                version=version,
                steps=len(result.steps) if reason is None else None,
                replies=replies,
                first_visible=round(first_visible[0] - started, 3) if first_visible else None,
                levers={
                    "forced_text": not args.no_forced_text,
                    "stream": not args.no_stream,
                    # getattr: an older agent (the ours-run-base tool) has no such setting
                    "thoughts_max_chars": getattr(session.agent.settings, "thoughts_max_chars", None),
                    "min_jump": args.min_jump,
                },
            )
            write_row(row, args.out)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", required=True, help="the benchmark proxy URL (the agent's endpoint)")
    parser.add_argument("--wrapper", default="chatml-grammar")
    parser.add_argument("--ctx", type=int, default=8192)
    parser.add_argument("--messages", required=True)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--out", required=True, help="JSON-lines file to append per-turn rows to")
    parser.add_argument("--turn-timeout", type=float, default=300)
    parser.add_argument("--tool", default="ours-run", help="the tool name written in each row")
    parser.add_argument("--max-tokens", type=int, help="the agent's output cap per step (default: the agent's)")
    parser.add_argument("--no-forced-text", action="store_true", help="sample the text the grammar forces")
    parser.add_argument("--no-stream", action="store_true", help="ask for whole completions, not streamed ones")
    parser.add_argument("--thoughts-max-chars", type=int, help="the grammar's bound on inner thoughts; 0: none")
    parser.add_argument("--min-jump", type=int, help="the shortest forced run worth a new request mid-call")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
