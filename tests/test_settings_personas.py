"""Personas and humans as MemGPT users manage them (`memgpt add`, `memgpt list`), and `memgpt run`'s line editing
and history, typed through a real terminal (tmux)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from memgpt_core.cli import cli
from memgpt_core.storage import Store

sys.path.insert(0, str(Path(__file__).parent))
from test_configure import clean_env, terminal  # noqa: F401  (the tmux fixture, defined once)

CLEAN = {"BACKEND_TYPE": None, "OPENAI_API_BASE": None, "MEMGPT_CONFIG_PATH": None, "MEMGPT_MODEL_NAME": None}
FLINT = "I am Captain Flint, a pirate who loves parrots."


def memgpt(home: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, env={**CLEAN, "MEMGPT_HOME": str(home)})


def test_add_and_list_personas_and_humans(tmp_path):
    home = tmp_path / "home"
    done = memgpt(home, "add", "persona", "--name", "flint", "--text", FLINT)
    assert done.exit_code == 0 and f"saved persona flint ({home / 'personas' / 'flint.txt'})" in done.output
    human = tmp_path / "kim.txt"
    human.write_text("The user is Kim, a baker.\n")
    assert memgpt(home, "add", "human", "--name", "kim", "-f", str(human)).exit_code == 0

    table = memgpt(home, "list", "personas").output.splitlines()
    assert table[0].split() == ["NAME", "ORIGIN", "TEXT"]
    assert [row.split()[:2] for row in table[1:3]] == [["default", "shipped"], ["flint", "saved"]]
    humans = json.loads(memgpt(home, "list", "humans", "--json").stdout)
    assert [(h["name"], h["origin"], h["text"]) for h in humans] == [
        ("default", "shipped", humans[0]["text"]),
        ("kim", "saved", "The user is Kim, a baker."),
    ]
    assert memgpt(home, "list", "agents").output.startswith("no agents yet")


def test_a_saved_name_replaces_a_shipped_one_of_the_same_name(tmp_path):
    home = tmp_path / "home"
    assert memgpt(home, "add", "persona", "--name", "default", "--text", FLINT).exit_code == 0
    listed = json.loads(memgpt(home, "list", "personas", "--json").stdout)
    assert [(p["name"], p["origin"]) for p in listed] == [("default", "saved")]


def test_add_refuses_what_it_cannot_keep(tmp_path):
    home = tmp_path / "home"
    assert memgpt(home, "add", "persona", "--name", "flint", "--text", FLINT).exit_code == 0
    again = memgpt(home, "add", "persona", "--name", "flint", "--text", "other")
    assert again.exit_code == 1 and "a persona named 'flint' already exists" in again.output and "--yes" in again.output
    replaced = memgpt(home, "add", "persona", "--name", "flint", "--text", "other", "--yes")
    assert replaced.exit_code == 0 and (home / "personas" / "flint.txt").read_text() == "other\n"
    both = memgpt(home, "add", "human", "--name", "x", "--text", "a", "-f", str(tmp_path / "x"))
    neither = memgpt(home, "add", "human", "--name", "x")
    assert both.exit_code == neither.exit_code == 2 and "either --text TEXT or -f FILE" in neither.output
    bad = memgpt(home, "add", "human", "--name", "../up", "--text", "a")
    assert bad.exit_code == 1 and "'../up' is not a valid human name" in bad.output
    long = memgpt(home, "add", "human", "--name", "long", "--text", "x" * 2001)
    assert long.exit_code == 1 and "2001 characters, over the core memory limit of 2000" in long.output
    missing = memgpt(home, "add", "human", "--name", "x", "-f", str(tmp_path / "absent.txt"))
    assert missing.exit_code == 1 and "cannot read" in missing.output


def new_agent(home: Path, url: str, name: str, *flags: str) -> Result:
    """`memgpt run` that makes an agent and leaves at once (--first: no greeting, so the model is not asked)."""
    args = ["run", "--agent", name, "--first", "--backend", "llamacpp", "--endpoint", url, "--model", "chatml"]
    return memgpt(home, *args, *flags, input="/exit\n")


def test_a_saved_name_sets_up_a_new_agent_by_flag_or_by_the_config_file(tmp_path, llama_server):
    home = tmp_path / "home"
    memgpt(home, "add", "persona", "--name", "flint", "--text", FLINT)
    memgpt(home, "add", "human", "--name", "kim", "--text", "The user is Kim.")
    assert new_agent(home, llama_server.url, "a1", "--persona", "flint").exit_code == 0
    (home / "config").write_text("[defaults]\npersona = flint\nhuman = kim\n")
    assert new_agent(home, llama_server.url, "a2").exit_code == 0
    with Store(home / "memgpt.db") as store:
        a1, a2 = store.get_agent("a1"), store.get_agent("a2")
        assert a1 is not None and a2 is not None
        assert a1.persona == FLINT and a1.human != "The user is Kim."
        assert (a2.persona, a2.human) == (FLINT, "The user is Kim.")


# -- memgpt run: line editing and history -----------------------------------------------------------------------


def test_run_edits_lines_and_remembers_them_per_home(tmp_path, llama_server, terminal):  # noqa: F811
    home = tmp_path / "home"
    memgpt(home, "add", "persona", "--name", "flint", "--text", FLINT)
    command = (
        f"{sys.executable} -m memgpt_core run --agent h --first --persona flint --backend llamacpp "
        f"--endpoint {llama_server.url} --model chatml"
    )
    terminal.start(command, clean_env(home))
    terminal.wait_for("you:")
    terminal.type("/memorx", "BSpace", "y", "Enter")  # edited before it is sent
    terminal.wait_for("Captain Flint")
    terminal.type("/exit", "Enter")
    history = home / "run_history"
    _wait(lambda: history.exists() and "/exit" in history.read_text())
    assert history.read_text().splitlines()[-2:] == ["/memory", "/exit"]
    assert stat.S_IMODE(history.stat().st_mode) == 0o600, "what was typed is private"

    terminal.close()
    terminal.start(command, clean_env(home))
    terminal.wait_for("you:")
    terminal.type("Up", "Up")  # back through the last session's lines
    terminal.wait_for("you: /memory")
    terminal.type("Enter")
    terminal.wait_for("Captain Flint")
    terminal.type("/exit", "Enter")
    _wait(lambda: history.read_text().splitlines()[-2:] == ["/memory", "/exit"] and len(history.read_text()) > 16)
    assert history.read_text().splitlines() == ["/memory", "/exit", "/memory", "/exit"]


def _wait(condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
