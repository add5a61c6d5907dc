"""Drive the original MemGPT (pymemgpt 0.3.25 or 0.2.11) through scripted user turns, without its interactive CLI.

Runs inside the pymemgpt virtualenv (not the project's). It does what ``memgpt run --first`` does for each typed
message: package the text as a user event, call ``Agent.step``, and keep stepping while the agent asks for a
heartbeat, a function failed, or a memory warning was raised. Two caps that ``memgpt run`` does not have keep a
benchmark finite: at most ``--max-steps`` steps per user turn, and ``--turn-timeout`` seconds per turn (SIGALRM).
Either cap ends the turn as failed. An exception from ``step`` (which ``memgpt run`` would print before asking
"Retry?") also fails the turn; the next turn goes on with the same agent, as a user answering "no" would.

Per turn it writes one JSON line: whether a reply reached the user (a ``send_message`` that returned OK), seconds,
steps, every function call and whether it returned OK, and the proxy's records of what the server evaluated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from turns import TurnTimeout, alarm, proxy_count, proxy_records, turn_row, write_row  # a sibling script

CONFIG_0325 = """[defaults]
preset = memgpt_chat
persona = sam_pov
human = basic

[model]
model_endpoint = {endpoint}
model_endpoint_type = llamacpp
model_wrapper = {wrapper}
context_window = {ctx}

[embedding]
embedding_endpoint_type = hugging-face
embedding_endpoint = http://127.0.0.1:9
embedding_model = none
embedding_dim = 384
embedding_chunk_size = 300

[archival_storage]
type = chroma
path = {home}/.memgpt/chroma

[recall_storage]
type = sqlite
path = {home}/.memgpt

[metadata_storage]
type = sqlite
path = {home}/.memgpt

[version]
memgpt_version = 0.3.25

[client]
anon_clientid = 00000000-0000-0000-0000-000000000000
"""

CONFIG_0211 = """[defaults]
preset = memgpt_chat
persona = sam_pov
human = basic

[model]
model_endpoint = {endpoint}
model_endpoint_type = llamacpp
model_wrapper = {wrapper}
context_window = {ctx}

[embedding]
embedding_endpoint_type = hugging-face
embedding_endpoint = http://127.0.0.1:9
embedding_model = none
embedding_dim = 384
embedding_chunk_size = 300

[archival_storage]
type = local

[version]
memgpt_version = 0.2.11

[client]
anon_clientid = 00000000000000000000000000000000
"""


def tiktoken_cache(version: str) -> str:
    """The cl100k_base copy llama-index ships, so tiktoken never tries the internet (see peer-memgpt.md)."""
    import importlib.util

    if version == "0.3.25":
        spec = importlib.util.find_spec("llama_index.core")
        assert spec and spec.origin
        return str(Path(spec.origin).parent / "_static" / "tiktoken_cache")
    spec = importlib.util.find_spec("llama_index")
    assert spec and spec.origin
    return str(Path(spec.origin).parent / "_static" / "tiktoken_cache")


def calls_in(messages: list[dict]) -> list[dict[str, object]]:
    """Function calls in the step's new messages (OpenAI dicts), each with whether its result said OK."""
    calls: list[dict[str, object]] = []
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        role = msg.get("role")
        if role == "assistant":
            for tc in msg.get("tool_calls") or []:
                fn = tc.get("function") if isinstance(tc, dict) else None
                if fn:
                    calls.append({"name": fn.get("name"), "arguments": fn.get("arguments"), "ok": None})
            if msg.get("function_call"):
                fn = msg["function_call"]
                calls.append({"name": fn.get("name"), "arguments": fn.get("arguments"), "ok": None})
        elif role in ("tool", "function"):
            status = None
            with contextlib.suppress(ValueError, AttributeError):
                status = json.loads(msg.get("content") or "").get("status")
            pending = [c for c in calls if c["ok"] is None]
            if pending:
                pending[-1]["ok"] = status == "OK"
    return calls


def make_agent(version: str, name: str):
    """Create a fresh agent the way ``memgpt run`` does for a new agent name; returns (agent, step_kwargs)."""
    if version == "0.3.25":
        from memgpt import create_client
        from memgpt.agent import Agent, save_agent
        from memgpt.cli.cli import create_default_user_or_exit
        from memgpt.config import MemGPTConfig
        from memgpt.interface import CLIInterface
        from memgpt.memory import ChatMemory
        from memgpt.metadata import MetadataStore

        config = MemGPTConfig.load()
        ms = MetadataStore(config)
        user = create_default_user_or_exit(config, ms)
        client = create_client()
        human_obj = ms.get_human(config.human, user.id)
        persona_obj = ms.get_persona(config.persona, user.id)
        memory = ChatMemory(human=human_obj.text, persona=persona_obj.text, limit=2000)
        agent_state = client.create_agent(
            name=name,
            system_prompt=None,
            embedding_config=config.default_embedding_config,
            llm_config=config.default_llm_config,
            memory=memory,
            metadata={"human": human_obj.name, "persona": persona_obj.name},
        )
        tools = [ms.get_tool(t, user_id=client.user_id) for t in agent_state.tools]
        agent = Agent(interface=CLIInterface(), agent_state=agent_state, tools=tools, first_message_verify_mono=False)
        save_agent(agent=agent, ms=ms)
        return agent
    # 0.2.11: the same steps as its `memgpt run` for a new agent (agent config file, local state, preset).
    import memgpt.presets.presets as presets
    import memgpt.utils as utils
    from llama_index import ServiceContext, set_global_service_context
    from memgpt.config import AgentConfig, MemGPTConfig
    from memgpt.embeddings import embedding_model
    from memgpt.interface import CLIInterface
    from memgpt.persistence_manager import LocalStateManager

    config = MemGPTConfig.load()
    service_context = ServiceContext.from_defaults(
        llm=None, embed_model=embedding_model(), chunk_size=config.embedding_chunk_size
    )
    set_global_service_context(service_context)
    agent_config = AgentConfig(name=name, persona=config.persona, human=config.human, preset=config.preset)
    agent_config.save()
    persistence_manager = LocalStateManager(agent_config)
    return presets.use_preset(
        agent_config.preset,
        agent_config,
        agent_config.model,
        utils.get_persona_text(agent_config.persona),
        utils.get_human_text(agent_config.human),
        CLIInterface,
        persistence_manager,
    )


def run(args: argparse.Namespace) -> int:
    from memgpt import system as msystem
    from memgpt.constants import FUNC_FAILED_HEARTBEAT_MESSAGE, REQ_HEARTBEAT_MESSAGE

    messages = json.loads(Path(args.messages).read_text())
    agent = make_agent(args.version, f"bench{args.run}")
    signal.signal(signal.SIGALRM, alarm)
    for turn, text in enumerate(messages, start=1):
        start_index = proxy_count(args.proxy)
        started = time.monotonic()
        steps = 0
        first_visible: float | None = None
        calls: list[dict[str, object]] = []
        error = None
        reason = None
        user_message = msystem.package_user_message(text)
        signal.alarm(int(args.turn_timeout))
        try:
            while True:
                steps += 1
                step_kwargs: dict[str, object] = {"first_message": False, "skip_verify": False}
                result = agent.step(user_message, **step_kwargs)
                new_messages, heartbeat_request, function_failed, token_warning = (
                    result[0],
                    result[1],
                    result[2],
                    result[3],
                )
                calls += calls_in(new_messages)
                if first_visible is None and any(c["name"] == "send_message" and c["ok"] for c in calls):
                    # MemGPT shows a reply whole, once the step that sent it is done.
                    first_visible = time.monotonic() - started
                if token_warning:
                    user_message = msystem.get_token_limit_warning()
                elif function_failed:
                    user_message = msystem.get_heartbeat(FUNC_FAILED_HEARTBEAT_MESSAGE)
                elif heartbeat_request:
                    user_message = msystem.get_heartbeat(REQ_HEARTBEAT_MESSAGE)
                else:
                    break
                if steps >= args.max_steps:
                    reason = "step cap"
                    break
        except TurnTimeout:
            reason = "turn timeout"
        except Exception as exc:  # what `memgpt run` prints before asking "Retry agent.step()?"
            reason = "exception"
            error = f"{type(exc).__name__}: {exc}"[:500]
            traceback.print_exc()
        finally:
            signal.alarm(0)
        seconds = time.monotonic() - started
        replied = any(c["name"] == "send_message" and c["ok"] for c in calls)
        if reason is None and not replied:
            reason = "no reply"
        records = proxy_records(args.proxy, start_index)
        row = turn_row(
            tool=args.tool or f"pymemgpt {args.version}",
            wrapper=args.wrapper,
            run=args.run,
            turn=turn,
            reason=reason,
            error=error,
            seconds=seconds,
            calls=calls,
            records=records,
            steps=steps,
            first_visible=round(first_visible, 3) if first_visible is not None else None,
        )
        write_row(row, args.out)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", help="the tool name written in each row (default: pymemgpt VERSION)")
    parser.add_argument("--version", choices=["0.3.25", "0.2.11"], required=True)
    parser.add_argument("--wrapper", required=True)
    parser.add_argument("--proxy", required=True, help="the benchmark proxy URL (the agent's endpoint)")
    parser.add_argument("--home", required=True, help="a fresh folder used as HOME, so ~/.memgpt lands there")
    parser.add_argument("--ctx", type=int, default=8192)
    parser.add_argument("--messages", required=True, help="JSON list of user messages")
    parser.add_argument("--run", type=int, default=1)
    parser.add_argument("--out", required=True, help="JSON-lines file to append per-turn rows to")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--turn-timeout", type=float, default=240)
    args = parser.parse_args()
    home = Path(args.home)
    # `memgpt configure` would have made these; both versions list them when loading personas and humans.
    for sub in ("personas", "humans", "agents", "archival", "functions", "presets"):
        (home / ".memgpt" / sub).mkdir(parents=True, exist_ok=True)
    template = CONFIG_0325 if args.version == "0.3.25" else CONFIG_0211
    (home / ".memgpt" / "config").write_text(
        template.format(endpoint=args.proxy, wrapper=args.wrapper, ctx=args.ctx, home=home)
    )
    # Both must be set before memgpt is imported: it reads ~ and tiktoken's cache folder at import time.
    os.environ["HOME"] = str(home)
    os.environ["TIKTOKEN_CACHE_DIR"] = tiktoken_cache(args.version)
    os.environ.setdefault("MEMGPT_DISABLE_TELEMETRY", "1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
