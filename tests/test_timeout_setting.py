"""MEMGPT_TIMEOUT: the seconds one request may take, read once with the other settings, refused when it is no number."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from memgpt_core.config import DEFAULT_TIMEOUT, resolve
from memgpt_core.errors import ConfigError


def test_the_default_and_a_set_value() -> None:
    assert resolve(env={}).timeout == DEFAULT_TIMEOUT
    assert resolve(env={"MEMGPT_TIMEOUT": " 1200 "}).timeout == 1200.0
    assert resolve(env={"MEMGPT_TIMEOUT": "2.5"}).timeout == 2.5


@pytest.mark.parametrize("raw", ["ten", "0", "-5", "inf", "nan"])
def test_a_value_that_is_not_a_positive_number_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(env={"MEMGPT_TIMEOUT": raw})
    assert f"MEMGPT_TIMEOUT={raw!r}" in caught.value.message
    assert "positive number" in caught.value.fix


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        held: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            sock.settimeout(0.1)
            while not stop.is_set():
                try:
                    held.append(sock.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            stop.set()
            thread.join()
            for conn in held:
                conn.close()


def test_the_setting_reaches_the_request_and_the_message_names_it(tmp_path, silent_endpoint: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"BACKEND_TYPE", "OPENAI_API_BASE"}}
    env.update(MEMGPT_HOME=str(tmp_path), MEMGPT_TIMEOUT="1")
    command = [sys.executable, "-m", "memgpt_core", "send", "--agent", "t", "--backend", "webui"]
    done = subprocess.run(
        [*command, "--endpoint", silent_endpoint, "hello"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "did not answer within 1 s" in done.stderr, done.stderr
    assert "MEMGPT_TIMEOUT" in done.stderr
