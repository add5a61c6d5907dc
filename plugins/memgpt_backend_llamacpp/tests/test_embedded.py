"""The embedded default: start_embedded() runs a real llama-server with SmolLM2 and stops it on every kind of exit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from memgpt_backend_llamacpp import LlamaCppBackend
from memgpt_backend_llamacpp.backend import EMBEDDED_WRAPPER
from memgpt_backend_llamacpp.server import health_status

from memgpt_core import plugins
from memgpt_core.backend import EmbeddedServer
from memgpt_core.errors import ConfigError
from memgpt_core.models import CompletionRequest


def test_start_embedded_serves_smollm2_and_stops(llama_programs, capfd, monkeypatch):
    monkeypatch.setenv("MEMGPT_LLAMA_SERVER_ARGS", "--threads 1 --alias 'SmolLM2 embedded'")
    with LlamaCppBackend.start_embedded(context_window=1024) as embedded:
        assert isinstance(embedded, EmbeddedServer)
        assert embedded.endpoint.startswith("http://127.0.0.1:")
        assert embedded.wrapper == "auto-grammar"
        backend = LlamaCppBackend(embedded.endpoint)
        assert backend.context_window() == 1024  # the window asked for is what each request gets
        assert backend.model_name() == "SmolLM2 embedded"  # the extra flags reached llama-server
        result = backend.complete(
            CompletionRequest(prompt="<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", max_tokens=4)
        )
        assert result.completion_tokens
    assert health_status(embedded.endpoint) is None
    assert "starting llama-server" in capfd.readouterr().err  # the progress went to stderr


def test_the_embedded_wrapper_is_installed():
    assert EMBEDDED_WRAPPER in plugins.get_wrappers()


def test_own_model_that_does_not_exist_is_refused(llama_programs, tmp_path):
    with pytest.raises(ConfigError) as info:
        LlamaCppBackend.start_embedded(model_path=str(tmp_path / "missing.gguf"))
    assert "missing.gguf" in str(info.value)


_HOLD = """
import time
from pathlib import Path
from memgpt_backend_llamacpp import LlamaCppBackend
with LlamaCppBackend.start_embedded(context_window=512) as server:
    print(server.endpoint, flush=True)
    time.sleep(120)
"""


def _interruptible() -> None:
    """In the child: Ctrl-C as in a terminal. A test run started in the background (``make test &``) inherits
    SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_server_stops_when_memgpt_is_interrupted(llama_programs, sig):
    env = {**os.environ, "MEMGPT_LLAMA_SERVER_ARGS": "--threads 1"}
    parent = subprocess.Popen(
        [sys.executable, "-c", _HOLD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_interruptible,
    )
    try:
        url = parent.stdout.readline().strip()
        assert url, parent.stderr.read()
        assert health_status(url) == 200
        parent.send_signal(sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while health_status(url) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert health_status(url) is None
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _memgpt_run(tmp_path) -> tuple[subprocess.Popen[str], str]:
    """`memgpt run` with nothing configured, until it names its embedded server; returns the process and the URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("BACKEND_TYPE", "OPENAI_API_BASE")}
    env.update(MEMGPT_HOME=str(tmp_path), MEMGPT_LLAMA_SERVER_ARGS="--threads 1", PYTHONUNBUFFERED="1")
    memgpt = Path(sys.executable).with_name("memgpt")
    proc = subprocess.Popen(
        [str(memgpt), "run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=_interruptible,
    )
    seen = ""
    deadline = time.monotonic() + 120
    while not re.search(r"http://127\.0\.0\.1:\d+\D", seen) and time.monotonic() < deadline:
        char = proc.stdout.read(1)
        if not char:
            break
        seen += char
    found = re.search(r"http://127\.0\.0\.1:\d+", seen)
    assert found, f"memgpt run did not show its embedded server:\n{seen}"
    assert health_status(found.group(0)) == 200
    return proc, found.group(0)


def _assert_stopped(url: str) -> None:
    deadline = time.monotonic() + 10
    while health_status(url) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health_status(url) is None


def test_memgpt_run_stops_the_embedded_server_on_exit(llama_programs, tmp_path):
    proc, url = _memgpt_run(tmp_path)
    proc.communicate("/exit\n", timeout=60)
    assert proc.returncode == 0
    _assert_stopped(url)


def test_memgpt_run_stops_the_embedded_server_on_ctrl_c(llama_programs, tmp_path):
    # Interrupted as soon as the server is up, which is while the agent's first step is still running.
    proc, url = _memgpt_run(tmp_path)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    _assert_stopped(url)
    assert "Traceback" not in out
