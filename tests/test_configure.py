"""`memgpt configure`: driven by flags (no terminal), killed halfway, and answered through a real terminal (tmux)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memgpt_core import settings_file

sys.path.insert(0, str(Path(__file__).parent))
from test_settings import memgpt_style_config  # the MemGPT-written file, built in one place


def clean_env(home: Path) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("BACKEND_TYPE", "OPENAI_API_BASE", "MEMGPT_"))}
    return {**kept, "MEMGPT_HOME": str(home)}


def configure(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memgpt_core", "configure", *args],
        capture_output=True,
        text=True,
        env={**clean_env(home), **(env or {})},
        stdin=subprocess.DEVNULL,  # no terminal: nothing is asked
        timeout=300,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def read(home: Path) -> settings_file.ConfigFile:
    return settings_file.load(home / "config")


# -- driven by flags ---------------------------------------------------------------------------------------------


def test_flags_alone_configure_a_server_checked_live(home, llama_server):
    done = configure(home, "--backend", "llamacpp", "--endpoint", llama_server.url + "/v1")
    assert done.returncode == 0, done.stderr
    found = read(home)
    assert (found.backend, found.endpoint) == ("llamacpp", llama_server.url), "the URL is normalised"
    assert found.context_window == llama_server.n_ctx, "read from the server"
    assert found.wrapper == "airoboros-l2-70b-2.1-grammar", "doctor's default rule for a grammar backend"
    assert f"ok: llamacpp at {llama_server.url}: model SmolLM2" in done.stderr
    assert done.stdout.startswith(f"wrote {home / 'config'}:\n[model]\nmodel_endpoint_type = llamacpp\n")


def test_memgpts_flag_spellings_and_explicit_answers(home, llama_server):
    done = configure(
        home,
        "--model-endpoint-type",
        "llamacpp",
        "--model-endpoint",
        llama_server.url,
        "--model-wrapper",
        "chatml-grammar",
        "--context-window",
        "4096",
        "--persona",
        "pirate",
        "--yes",
    )
    assert done.returncode == 0, done.stderr
    found = read(home)
    assert (found.wrapper, found.context_window, found.persona) == ("chatml-grammar", 4096, "pirate")


def test_nothing_answering_is_refused_and_the_old_file_kept(home):
    old = "[model]\nmodel_endpoint_type = koboldcpp\nmodel_endpoint = http://127.0.0.1:5001\n"
    (home / "config").write_text(old)
    done = configure(home, "--backend", "llamacpp", "--endpoint", "http://127.0.0.1:9")
    assert done.returncode == 1 and "nothing is answering at http://127.0.0.1:9/" in done.stderr
    assert "Traceback" not in done.stderr
    assert (home / "config").read_text() == old
    skipped = configure(home, "--backend", "llamacpp", "--endpoint", "http://127.0.0.1:9", "--no-check")
    assert skipped.returncode == 0, skipped.stderr
    assert read(home).endpoint == "http://127.0.0.1:9" and read(home).context_window == 8192, "MemGPT's default"


def test_a_memgpt_file_keeps_its_other_sections(home, llama_server):
    before = memgpt_style_config(home / "config")
    done = configure(home, "--backend", "llamacpp", "--endpoint", llama_server.url, "--model", "chatml")
    assert done.returncode == 0, done.stderr
    after = (home / "config").read_text()
    for kept in ("[defaults]\npreset = memgpt_chat", "embedding_model = BAAI/bge-small-en-v1.5", "[client]"):
        assert kept in before and kept in after
    assert after.index("[defaults]") < after.index("[model]") < after.index("[embedding]"), "MemGPT's order stays"
    assert read(home).wrapper == "chatml"


def test_the_embedded_default_removes_the_server_and_keeps_the_rest(home, tmp_path):
    (home / "config").write_text(
        "[model]\nmodel_endpoint_type = llamacpp\nmodel_endpoint = http://127.0.0.1:8080\n"
        "model_wrapper = chatml\ncontext_window = 4096\n\n[sampling]\ntemperature = 0.5\n"
    )
    model = tmp_path / "my.gguf"
    model.write_bytes(b"GGUF")
    done = configure(home, "--backend", "embedded", "--model-path", str(model))
    assert done.returncode == 0, done.stderr
    found = read(home)
    assert (found.backend, found.endpoint, found.wrapper, found.context_window) == (None, None, None, None)
    assert found.model_path == str(model) and found.sampling == {"temperature": 0.5}


def test_unknown_names_list_what_is_installed(home):
    done = configure(home, "--backend", "nosuch")
    assert done.returncode == 1 and "there is no backend named 'nosuch'" in done.stderr and "llamacpp" in done.stderr
    done = configure(home, "--backend", "llamacpp", "--no-check", "--model", "nosuch")
    assert done.returncode == 1 and "there is no wrapper named 'nosuch'" in done.stderr
    assert not (home / "config").exists()


def test_variables_that_win_over_the_file_are_pointed_out(home, llama_server):
    done = configure(home, "--backend", "llamacpp", "--endpoint", llama_server.url, env={"BACKEND_TYPE": "webui"})
    assert done.returncode == 0, done.stderr
    assert "note: BACKEND_TYPE is set in this shell, and variables win over the config file" in done.stderr


# -- a kill halfway ----------------------------------------------------------------------------------------------

KILLED_AT = """
import os, signal, sys
moment = sys.argv.pop(1)
def hook(event, args):
    if moment == "rename" and event == "os.rename":  # the new text is written and on disk, not yet renamed
        os.kill(os.getpid(), signal.SIGKILL)
    if moment == "open" and event == "open" and str(args[0]).endswith(".tmp"):  # the temporary file is opened
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
from memgpt_core.cli import main
sys.argv[0] = "memgpt"
main()
"""


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("moment", ["open", "rename"])
def test_a_kill_during_configure_leaves_the_old_file_whole(home, moment):
    old = memgpt_style_config(home / "config")
    args = ["configure", "--backend", "koboldcpp", "--endpoint", "http://127.0.0.1:5001", "--no-check"]
    done = subprocess.run(
        [sys.executable, "-c", KILLED_AT, moment, *args],
        capture_output=True,
        text=True,
        env=clean_env(home),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (home / "config").read_text() == old, "not a byte changed"
    leftovers = list(home.glob(".config.*.tmp"))
    if moment == "rename":
        assert len(leftovers) == 1 and "model_endpoint_type = koboldcpp" in leftovers[0].read_text()
    again = configure(home, "--backend", "koboldcpp", "--endpoint", "http://127.0.0.1:5001", "--no-check")
    assert again.returncode == 0, again.stderr
    assert read(home).backend == "koboldcpp"
    assert not list(home.glob(".config.*.tmp")), "the dead writer's temporary file is cleaned up"


# -- a real terminal ---------------------------------------------------------------------------------------------


class Terminal:
    """One program in a tmux session of its own (a private tmux server), typed into and read like a person would."""

    def __init__(self, tmp_path: Path) -> None:
        self.folder = tmp_path
        self.started = 0

    @property
    def socket(self) -> str:
        # A socket file in the test's own folder: a new tmux server per start, nothing shared, nothing left behind.
        return str(self.folder / f"tmux-{self.started}")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=30)
        return done.stdout

    def start(self, command: str, env: dict[str, str]) -> None:
        self.started += 1
        kept = {k: v for k, v in env.items() if k.startswith(("MEMGPT_", "PATH", "HOME"))} | {"TERM": "screen"}
        exports = " ".join(f"{k}={_quote(v)}" for k, v in kept.items())
        self.tmux("new-session", "-d", "-s", "t", "-x", "200", "-y", "60", f"env -i {exports} {command}; sleep 600")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t", "-S", "-200")

    def wait_for(self, text: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on the terminal:\n{self.screen()}")

    def type(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def close(self) -> None:
        """End every tmux server this terminal started (each one only: its own socket)."""
        for number in range(1, self.started + 1):
            socket = str(self.folder / f"tmux-{number}")
            subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, timeout=30)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


@pytest.fixture
def terminal(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    term = Terminal(tmp_path)
    try:
        yield term
    finally:
        term.close()


def test_configure_through_a_real_terminal(home, llama_server, terminal):
    terminal.start(f"{sys.executable} -m memgpt_core configure", clean_env(home))
    screen = terminal.wait_for("Backend [")
    assert "embedded" in screen and "llamacpp" in screen and f"the answers go to {home / 'config'}" in screen
    terminal.type("llamacpp", "Enter")
    terminal.wait_for("Endpoint (the server's base URL) [http://127.0.0.1:8080]:")
    terminal.type("C-u", "http://127.0.0.1:9", "Enter")  # nothing there: said, and asked again
    terminal.wait_for("nothing is answering at http://127.0.0.1:9/")
    terminal.wait_for("Endpoint (the server's base URL) [http://127.0.0.1:9]:")
    terminal.type(llama_server.url, "Enter")
    screen = terminal.wait_for("Wrapper [airoboros-l2-70b-2.1-grammar]:")
    assert "recommended airoboros-l2-70b-2.1-grammar, the one `memgpt doctor` picks" in screen
    terminal.type("Enter")
    terminal.wait_for(f"Context window: the server says {llama_server.n_ctx}")
    terminal.type("Enter")
    screen = terminal.wait_for("model_endpoint_type = llamacpp")
    assert f"wrote {home / 'config'}:" in screen
    found = read(home)
    assert (found.backend, found.endpoint, found.context_window) == ("llamacpp", llama_server.url, llama_server.n_ctx)


def test_ctrl_c_at_a_question_leaves_the_old_file_as_it_was(home, terminal):
    old = "[model]\nmodel_endpoint_type = koboldcpp\nmodel_endpoint = http://127.0.0.1:5001\n"
    (home / "config").write_text(old)
    terminal.start(f"{sys.executable} -m memgpt_core configure", clean_env(home))
    terminal.wait_for("Backend [koboldcpp]:")
    terminal.type("llamacpp", "Enter")
    terminal.wait_for("Endpoint")
    terminal.type("C-c")
    terminal.wait_for(f"cancelled: {home / 'config'} is as it was")
    assert (home / "config").read_text() == old
