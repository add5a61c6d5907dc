"""`memgpt agents list/delete` and `memgpt send`'s refusals, run as real processes: sentences, never tracebacks."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from memgpt_core.storage import Store


def memgpt(home, *args, timeout=120):
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    for name in ("BACKEND_TYPE", "OPENAI_API_BASE"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "memgpt_core", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def no_traceback(done):
    assert "Traceback" not in done.stderr + done.stdout


def test_agents_list_when_there_are_none(home):
    done = memgpt(home, "agents", "list")
    assert done.returncode == 0 and "no agents yet" in done.stdout


def test_agents_list_shows_each_agent_with_counts(home):
    with Store(home / "memgpt.db") as store:
        ann = store.create_agent("ann", persona="p", human="h", config={"backend": "llamacpp"})
        store.create_agent("bob", persona="p", human="h")
        store.add_message(ann.id, "user", "{}", text="hello")
        store.archival_insert(ann.id, "a note")
    table = memgpt(home, "agents", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "CREATED", "(UTC)", "MESSAGES", "ARCHIVAL", "BACKEND"]
    assert table[1].split()[0] == "ann" and table[1].split()[-3:] == ["1", "1", "llamacpp"]
    assert table[2].split()[-3:] == ["0", "0", "as-configured"], "no backend fixed by a flag"
    listed = json.loads(memgpt(home, "agents", "list", "--json").stdout)
    assert [(a["name"], a["messages"], a["archival"]) for a in listed] == [("ann", 1, 1), ("bob", 0, 0)]


def test_agents_delete_removes_everything(home):
    with Store(home / "memgpt.db") as store:
        ann = store.create_agent("ann", persona="p", human="h")
        store.add_message(ann.id, "user", "{}", text="hello")
    done = memgpt(home, "agents", "delete", "ann", "--yes")
    assert done.returncode == 0 and "deleted agent ann" in done.stdout
    with Store(home / "memgpt.db") as store:
        assert store.get_agent("ann") is None
        assert store.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_agents_delete_of_an_unknown_agent_is_a_sentence(home):
    done = memgpt(home, "agents", "delete", "ghost", "--yes")
    assert done.returncode == 1 and "there is no agent named 'ghost'" in done.stderr
    no_traceback(done)


def test_an_agent_in_use_cannot_be_deleted_or_sent_to(home):
    with Store(home / "memgpt.db") as store:
        ann = store.create_agent("ann", persona="p", human="h")
        lock = store.lock(ann)
        try:
            deleted = memgpt(home, "agents", "delete", "ann", "--yes")
            sent = memgpt(home, "send", "--agent", "ann", "hello")
            sent_json = memgpt(home, "send", "--agent", "ann", "--json", "hello")
        finally:
            lock.release()
    for done in (deleted, sent):
        assert done.returncode == 1
        assert f"agent 'ann' is in use by process {os.getpid()}" in done.stderr
        no_traceback(done)
    event = json.loads(sent_json.stdout.strip())
    assert event["type"] == "error" and "in use" in event["text"] and event["error"] == "AgentInUseError"


def test_send_needs_an_agent_name(home):
    done = memgpt(home, "send", "hello")
    assert done.returncode == 2 and "memgpt send needs --agent NAME" in done.stderr


def test_send_to_a_server_that_is_not_there_explains_and_creates_no_agent(home):
    done = memgpt(home, "send", "--agent", "ann", "--backend", "llamacpp", "--endpoint", "http://127.0.0.1:1", "hi")
    assert done.returncode == 1 and "nothing is answering at http://127.0.0.1:1" in done.stderr
    no_traceback(done)
    assert "no agents yet" in memgpt(home, "agents", "list").stdout


def test_send_with_an_unknown_backend_or_persona_lists_what_exists(home):
    done = memgpt(home, "send", "--agent", "ann", "--backend", "nosuch", "hi")
    assert done.returncode == 1 and "no backend named 'nosuch'" in done.stderr and "llamacpp" in done.stderr
    done = memgpt(home, "send", "--agent", "ann", "--persona", "nobody", "hi")
    assert done.returncode == 1 and "no persona named 'nobody'" in done.stderr
    no_traceback(done)


def test_a_persona_and_human_can_come_from_files(home, tmp_path, llama_server):
    persona = tmp_path / "pirate.txt"
    persona.write_text("I am Captain Flint, a pirate who loves parrots.")
    done = memgpt(
        home,
        "send",
        "--agent",
        "flint",
        "--persona",
        str(persona),
        "--backend",
        "llamacpp",
        "--endpoint",
        llama_server.url,
        "--max-tokens",
        "64",
        "--json",
        "Ahoy!",
        timeout=600,
    )
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    # The model may edit its persona in this very turn; the stored persona must be the file's text with exactly the
    # edits the agent reported (replayed through the same memory functions), and nothing else.
    from types import SimpleNamespace

    from memgpt_core.agent import memory

    expected = SimpleNamespace(persona=persona.read_text(), human="", persona_limit=2000, human_limit=2000)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for call, answer in itertools.pairwise(events):
        if call["type"] == "function_call" and answer["type"] == "function_return" and answer.get("ok"):
            arguments = call["arguments"]
            if arguments.get("name") == "persona" and call["name"] == "core_memory_append":
                memory.append(expected, "persona", arguments["content"])
            elif arguments.get("name") == "persona" and call["name"] == "core_memory_replace":
                memory.replace(expected, "persona", arguments["old_content"], arguments["new_content"])
    with Store(home / "memgpt.db") as store:
        agent = store.get_agent("flint")
        assert agent.persona == expected.persona
        assert agent.config == {"backend": "llamacpp", "endpoint": llama_server.url, "max_tokens": 64}


def run_args(url):
    return ["run", "--agent", "chatty", "--first", "--backend", "llamacpp", "--endpoint", url]


def test_run_slash_commands_without_a_model_call(home, llama_server):
    env = {**os.environ, "MEMGPT_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "memgpt_core", *run_args(llama_server.url)],
        input="/help\n/memory\n/dump 2\n/pop\n/summarize\n/nonsense\n/exit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    # A server of the user's own gets the seed page's default wrapper (the grammar variant: llama.cpp takes grammars).
    assert "new agent chatty" in done.stderr and "wrapper airoboros-l2-70b-2.1-grammar" in done.stderr
    assert "/rethink TEXT" in done.stdout  # the help
    assert '<persona characters="' in done.stdout and "Recall memory: 0 messages" in done.stdout
    assert "removed 0 messages" in done.stdout
    assert "nothing old enough to summarise yet" in done.stdout
    assert "unknown command /nonsense" in done.stdout


def test_run_exits_cleanly_on_ctrl_c(home, llama_server):
    import signal
    import time

    env = {**os.environ, "MEMGPT_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "memgpt_core", *run_args(llama_server.url)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C as in a terminal, even when this test run was started in the background (SIGINT ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    with Store(home / "memgpt.db") as store:  # wait until the chat is up (the agent exists once the server answered)
        while store.get_agent("chatty") is None and time.monotonic() < deadline:
            time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err and "bye (the agent is saved)" in err
    assert process.returncode == 0
    with Store(home / "memgpt.db") as store:  # and the agent is free again
        store.lock(store.get_agent("chatty")).release()
