"""CLI paths no other test covers: `memgpt run`'s model-calling slash commands fed through stdin, MemGPT's flag
spellings on `memgpt send`, `--human FILE` and a missing `--model-path`, `agents delete` answered "n", doctor with an
unknown wrapper and in embedded mode, and the timeout and generic branches of ``memgpt_core.http.request_json``."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from memgpt_core.cli import cli
from memgpt_core.errors import BackendError, BackendTimeoutError
from memgpt_core.storage import MessageRecord, Store

CLEAN_ENV = {"BACKEND_TYPE": None, "OPENAI_API_BASE": None, "MEMGPT_API_KEY": None, "MEMGPT_MODEL_PATH": None}
MAX_TOKENS = "64"
GREETING = "Hi, my name is Sam."


def memgpt(home: Path, *args: str, input: str | None = None) -> Result:
    """One in-process CLI call with a clean environment and MEMGPT_HOME set to ``home``."""
    env = {**CLEAN_ENV, "MEMGPT_HOME": str(home)}
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output


def server_args(url: str) -> list[str]:
    return ["--backend", "llamacpp", "--endpoint", url, "--model", "chatml-grammar", "--max-tokens", MAX_TOKENS]


def run_chat(home: Path, url: str, lines: list[str]) -> Result:
    """`memgpt run` on agent ``chatty`` (the user speaks first), fed ``lines`` on stdin, then /exit."""
    result = memgpt(
        home, "run", "--agent", "chatty", "--first", *server_args(url), input="\n".join([*lines, "/exit", ""])
    )
    no_traceback(result)
    assert result.exit_code == 0, result.output
    return result


def context(home: Path, name: str = "chatty") -> list[MessageRecord]:
    with Store(home / "memgpt.db") as store:
        record = store.get_agent(name)
        assert record is not None
        return store.get_messages(record.context)


def is_user_message(message: MessageRecord) -> bool:
    return message.role == "user" and '"type": "user_message"' in (message.content or "")


def is_heartbeat(message: MessageRecord) -> bool:
    return message.role == "user" and '"type": "heartbeat"' in (message.content or "")


def last_send_message(messages: list[MessageRecord]) -> MessageRecord | None:
    for message in reversed(messages):
        if message.role == "assistant" and (message.function_call or {}).get("name") == "send_message":
            return message
    return None


# -- `memgpt run` slash commands that change the conversation --------------------------------------------------------


@pytest.fixture(scope="module")
def chatted(tmp_path_factory: pytest.TempPathFactory, llama_server: Any) -> Path:
    """A MEMGPT_HOME whose agent ``chatty`` has answered one user message; each test works on a copy of it."""
    home = tmp_path_factory.mktemp("chatted")
    run_chat(home, llama_server.url, [GREETING])
    messages = context(home)
    assert sum(is_user_message(m) for m in messages) == 1
    assert any(m.role == "assistant" for m in messages), "the agent must have answered the greeting"
    return home


@pytest.fixture
def home(chatted: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(chatted, copy)
    return copy


def test_rewrite_replaces_the_last_reply(home: Path, llama_server: Any) -> None:
    # A turn can end without send_message (the heartbeat cap); a few more turns give the model a reply to rewrite.
    for _ in range(3):
        if last_send_message(context(home)) is not None:
            break
        run_chat(home, llama_server.url, ["Please answer me."])
    assert last_send_message(context(home)) is not None, "no turn of four ended in send_message: nothing to rewrite"
    result = run_chat(home, llama_server.url, ["/rewrite hello there", "/dump 2"])
    assert "hello there" in result.output, "/dump 2 shows the rewritten reply"
    message = last_send_message(context(home))
    assert message is not None
    assert json.loads(message.function_call["arguments"])["message"] == "hello there"  # type: ignore[index]
    assert message.text == "hello there"


def test_rethink_replaces_the_last_thoughts(home: Path, llama_server: Any) -> None:
    before = [m for m in context(home) if m.role == "assistant"][-1]
    thought = "I should greet Sam warmly and ask about his day."
    assert before.content != thought
    run_chat(home, llama_server.url, [f"/rethink {thought}"])
    after = [m for m in context(home) if m.role == "assistant"][-1]
    assert after.id == before.id, "the same message is edited in place"
    assert after.content == thought
    assert after.function_call == before.function_call, "only the thoughts change, not the call"


def test_retry_leaves_one_answer_to_the_last_user_message(home: Path, llama_server: Any) -> None:
    before = context(home)
    old_ids = {m.id for m in before}
    run_chat(home, llama_server.url, ["/retry"])
    after = context(home)
    users = [m for m in after if is_user_message(m)]
    assert len(users) == 1 and GREETING in (users[0].content or ""), "the user message is asked once, not twice"
    index = after.index(users[0])
    answer = after[index + 1 :]
    assert answer and any(m.role == "assistant" for m in answer), "the agent answered again"
    assert all(m.id not in old_ids for m in after[index:]), "the old answer is gone; only the new one follows"
    old_index = next(i for i, m in enumerate(before) if is_user_message(m))
    assert [m.id for m in after[:index]] == [m.id for m in before[:old_index]], "what came before is untouched"
    with Store(home / "memgpt.db") as store:
        dropped = [m.id for m in before[old_index:]]
        assert store.get_messages(dropped) == [], "the dropped answer is gone from recall too"


def test_heartbeat_adds_a_step(home: Path, llama_server: Any) -> None:
    before = context(home)
    run_chat(home, llama_server.url, ["/heartbeat"])
    after = context(home)
    assert [m.id for m in after[: len(before)]] == [m.id for m in before], "nothing earlier changes"
    added = after[len(before) :]
    assert added and is_heartbeat(added[0]), "a heartbeat event starts the new step"
    assert any(m.role == "assistant" for m in added), "and the agent took at least one step"


# -- flags -------------------------------------------------------------------------------------------------------------


def listed(home: Path) -> dict[str, dict[str, Any]]:
    result = memgpt(home, "agents", "list", "--json")
    assert result.exit_code == 0, result.output
    return {agent["name"]: agent for agent in json.loads(result.output)}


def test_memgpt_flag_spellings_reach_the_same_session(tmp_path: Path, llama_server: Any) -> None:
    url = llama_server.url
    alias = memgpt(
        tmp_path, "send", "--agent", "alias", "--model-wrapper", "chatml-grammar", "--model-endpoint-type", "llamacpp",
        "--model-endpoint", url, "--max-tokens", MAX_TOKENS, "--json", "Hi",
    )  # fmt: skip
    plain = memgpt(
        tmp_path, "send", "--agent", "plain", "--model", "chatml-grammar", "--backend", "llamacpp",
        "--endpoint", url, "--max-tokens", MAX_TOKENS, "--json", "Hi",
    )  # fmt: skip
    for result in (alias, plain):
        no_traceback(result)
        assert result.exit_code == 0, result.output
    agents = listed(tmp_path)
    for name in ("alias", "plain"):
        assert agents[name]["wrapper"] == "chatml-grammar" and agents[name]["backend"] == "llamacpp"
    with Store(tmp_path / "memgpt.db") as store:
        alias_config = store.get_agent("alias").config  # type: ignore[union-attr]
        plain_config = store.get_agent("plain").config  # type: ignore[union-attr]
    assert alias_config == plain_config
    assert alias_config["endpoint"] == url


def test_human_file_goes_into_core_memory(tmp_path: Path, llama_server: Any) -> None:
    human = tmp_path / "sam.txt"
    human.write_text("Sam is a lighthouse keeper from Maine who likes sea shanties.")
    home = tmp_path / "home"
    result = memgpt(
        home, "run", "--agent", "keeper", "--first", "--human", str(human), *server_args(llama_server.url),
        input="/memory\n/exit\n",
    )  # fmt: skip
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert human.read_text() in result.output, "/memory shows the file's text"
    with Store(home / "memgpt.db") as store:
        assert store.get_agent("keeper").human == human.read_text()  # type: ignore[union-attr]


def missing_model(tmp_path: Path) -> tuple[Path, Result]:
    missing = tmp_path / "no-such-model.gguf"
    result = memgpt(tmp_path / "home", "send", "--agent", "ann", "--model-path", str(missing), "hi")
    return missing, result


def test_missing_model_path_is_a_sentence_naming_the_file(tmp_path: Path) -> None:
    missing, result = missing_model(tmp_path)
    no_traceback(result)
    assert result.exit_code == 1
    assert f"the model file {missing}" in result.output and "does not exist" in result.output
    assert "no agents yet" in memgpt(tmp_path / "home", "agents", "list").output, "a failed start makes no agent"


def test_missing_model_path_names_the_model_path_flag(tmp_path: Path) -> None:
    # Issue 17: the sentence used to say "(from --model)", which is the wrapper flag, not the GGUF one.
    _, result = missing_model(tmp_path)
    assert "--model-path" in result.output
    assert "(from --model)" not in result.output


def test_agents_delete_answered_no_keeps_the_agent(tmp_path: Path) -> None:
    with Store(tmp_path / "memgpt.db") as store:
        ann = store.create_agent("ann", persona="p", human="h")
        store.add_message(ann.id, "user", "{}", text="hello")
    result = memgpt(tmp_path, "agents", "delete", "ann", input="n\n")
    assert result.exit_code == 0, result.output
    assert "delete agent ann and all its memory?" in result.output and "kept" in result.output
    assert "deleted" not in result.output
    with Store(tmp_path / "memgpt.db") as store:
        kept = store.get_agent("ann")
        assert kept is not None and store.count_messages(kept.id) == 1
        store.lock(kept).release()  # and it is not left locked


# -- doctor ------------------------------------------------------------------------------------------------------------


def doctor_checks(result: Result) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    report = json.loads(result.stdout)  # stdout only: progress lines go to stderr
    return report, {check["name"]: check for check in report["checks"]}


def test_doctor_with_an_unknown_wrapper_lists_the_installed_ones(tmp_path: Path, llama_server: Any) -> None:
    result = memgpt(
        tmp_path, "doctor", "--backend", "llamacpp", "--endpoint", llama_server.url, "--model", "no-such-wrapper",
        "--samples", "1", "--max-tokens", "32", "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    report, found = doctor_checks(result)
    assert report["ok"] is False
    assert found["reachable"]["status"] == "ok"
    parse = found["parse rate"]
    assert parse["status"] == "fail" and "no wrapper named 'no-such-wrapper'" in parse["detail"]
    assert "installed wrappers:" in parse["fix"]
    for name in ("chatml", "chatml-grammar"):
        assert name in parse["fix"].split(": ", 1)[1].split(", ")


def test_doctor_in_embedded_mode_starts_its_own_server(tmp_path: Path, llama_programs: Any) -> None:
    # 96, not 32: at 32 tokens SmolLM2's grammar-bound call is cut off before send_message's message, and the
    # parse-rate check fails on the truncation rather than on the wrapper.
    result = memgpt(tmp_path, "doctor", "--samples", "1", "--max-tokens", "96", "--json")
    report, found = doctor_checks(result)
    assert report["backend"] == "llamacpp"
    assert report["endpoint"].startswith("http://127.0.0.1:"), report["endpoint"]
    assert found["reachable"]["status"] == "ok", found["reachable"]
    assert found["parse rate"]["status"] == "ok", found["parse rate"]
    assert report["ok"] is True and result.exit_code == 0, found
    # The embedded server says what it started (on stderr, so the JSON on stdout stays clean).
    assert "starting llama-server with" in result.stderr and ".gguf" in result.stderr


# -- memgpt_core.http.request_json -------------------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback socket that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            sock.settimeout(0.1)
            while not stop.is_set():
                try:
                    accepted.append(sock.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/completion"
        finally:
            stop.set()
            thread.join()
            for conn in accepted:
                conn.close()


@pytest.fixture
def cut_off_server() -> Iterator[str]:
    """A loopback server that starts a 200 response promising 200 bytes, sends a few, and closes the connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)

        def serve() -> None:
            conn, _ = sock.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"con')

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/completion"
        finally:
            thread.join(timeout=5)


def test_request_json_timeout_names_the_url(silent_server: str) -> None:
    from memgpt_core.http import request_json

    with pytest.raises(BackendTimeoutError) as caught:
        request_json("POST", silent_server, backend="llamacpp", json={"prompt": "hi"}, timeout=1.0)
    assert silent_server in str(caught.value) and "did not answer within 1 s" in str(caught.value)
    assert caught.value.url == silent_server


def test_request_json_connection_cut_mid_response_names_the_url(cut_off_server: str) -> None:
    from memgpt_core.http import request_json

    with pytest.raises(BackendError) as caught:
        request_json("POST", cut_off_server, backend="llamacpp", json={"prompt": "hi"}, timeout=5.0)
    assert not isinstance(caught.value, BackendTimeoutError)
    assert f"the llamacpp server at {cut_off_server} closed the stream before the answer was complete" in str(
        caught.value
    )
    assert caught.value.url == cut_off_server
