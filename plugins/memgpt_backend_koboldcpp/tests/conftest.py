"""The real KoboldCpp for these tests: built once from source, started on a free loopback port, stopped at the end.

- ``koboldcpp_server`` (session): the URL of a KoboldCpp 1.76 serving the SmolLM2 GGUF that
  ``memgpt_backend_llamacpp.server.find_model()`` finds, with ``--contextsize 4096``.
- ``koboldcpp_process`` (session): the same server as a process, for its context size, model and the requests it
  received (read from its console log).
- ``koboldcpp_factory``: start extra, separately configured instances (``--password``, ``--multiuser 0`` ...),
  all stopped after the test.

The source comes with ``build-koboldcpp.sh`` (it builds once into a cache folder and prints it), found in
``$MEMGPT_KOBOLDCPP_SOURCE``, else ``<repo>/../shared/servers``, else ``/work/shared/servers``. When it cannot be found
or built, or the model is missing, these tests FAIL with the fix: CI must never pass by silently skipping them.
``MEMGPT_SKIP_SERVER_TESTS=1`` skips them on purpose, as it does the llama-server tests. Every test that uses a
KoboldCpp carries the ``koboldcpp`` and ``server`` markers, so ``-m "not server"`` deselects them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SOURCE_ENV = "MEMGPT_KOBOLDCPP_SOURCE"
SKIP_ENV = "MEMGPT_SKIP_SERVER_TESTS"
BUILD_SCRIPT = "build-koboldcpp.sh"
REPO = Path(__file__).resolve().parents[3]
CONTEXT_SIZE = 4096
FIXTURES = {"koboldcpp_server", "koboldcpp_process", "koboldcpp_factory", "koboldcpp_build"}
BUILD_TIMEOUT = 1800  # the first build takes minutes on 2 cores; later calls return at once

# Proxies from the environment must never see loopback traffic.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "koboldcpp: needs the real KoboldCpp (the `koboldcpp_server` fixture, built from source)"
    )
    config.addinivalue_line("markers", "server: needs a real model server (llama-server or KoboldCpp)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.koboldcpp)
            item.add_marker(pytest.mark.server)


def _skip_if_opted_out() -> None:
    if os.environ.get(SKIP_ENV, "").strip() not in ("", "0"):
        pytest.skip(f"{SKIP_ENV} is set: tests that need a real KoboldCpp are skipped on purpose")


def find_build_script() -> Path:
    """``build-koboldcpp.sh``: in ``$MEMGPT_KOBOLDCPP_SOURCE``, else beside the repository, else /work/shared."""
    chosen = os.environ.get(SOURCE_ENV, "").strip()
    if chosen:
        script = Path(chosen).expanduser() / BUILD_SCRIPT
        if not script.is_file():
            pytest.fail(
                f"{SOURCE_ENV}={chosen} but there is no {BUILD_SCRIPT} in that folder; point {SOURCE_ENV} at the "
                f"folder holding {BUILD_SCRIPT} and koboldcpp-1.76-src.tar.xz",
                pytrace=False,
            )
        return script
    places = [REPO.parent / "shared" / "servers", Path("/work/shared/servers")]
    for place in places:
        if (place / BUILD_SCRIPT).is_file():
            return place / BUILD_SCRIPT
    pytest.fail(
        f"these tests need the real KoboldCpp, and {BUILD_SCRIPT} was not found in {' or '.join(map(str, places))}. "
        f"Set {SOURCE_ENV} to the folder holding {BUILD_SCRIPT} and koboldcpp-1.76-src.tar.xz "
        f"(or set {SKIP_ENV}=1 to skip the tests that need a server)",
        pytrace=False,
    )


class KoboldCpp:
    """One KoboldCpp process on 127.0.0.1: ``start()`` waits until it answers; ``stop()`` ends its process group."""

    def __init__(self, folder: Path, model: Path, *flags: str, context_size: int = CONTEXT_SIZE) -> None:
        self.folder = folder
        self.model = model
        self.flags = list(flags)
        self.context_size = context_size
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> KoboldCpp:
        from memgpt_backend_llamacpp.server import free_port

        for attempt in range(3):
            self.port = free_port()
            self._launch()
            if self._wait(timeout):
                return self
            log = self.log_tail()
            # Someone took the free port between choosing it and KoboldCpp binding it: choose another.
            lost_port = "Address already in use" in log and attempt < 2
            self.stop(keep_log=not lost_port)
            if not lost_port:
                pytest.fail(
                    f"KoboldCpp did not start ({' '.join(self.command())}). Its log ends with:\n{log}", pytrace=False
                )
        return self

    def command(self) -> list[str]:
        return [
            sys.executable, str(self.folder / "koboldcpp.py"), "--model", str(self.model),
            "--host", "127.0.0.1", "--port", str(self.port), "--contextsize", str(self.context_size),
            "--skiplauncher", "--threads", "1", *self.flags,
        ]  # fmt: skip

    def _launch(self) -> None:
        fd, name = tempfile.mkstemp(prefix="memgpt-koboldcpp-", suffix=".log")
        self.log_path = Path(name)
        with os.fdopen(fd, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.folder,
                # Unbuffered, so the log holds each request KoboldCpp received ("Input: {...}") once it has answered.
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so stop() ends it and anything it started, whatever happened in a test.
                start_new_session=True,
                preexec_fn=_die_with_parent if _can_die_with_parent() else None,
            )

    def _wait(self, timeout: float) -> bool:
        """True once ``GET /api/extra/version`` answers (KoboldCpp listens only after loading the model)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with _opener.open(self.url + "/api/extra/version", timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        return False

    def received(self) -> list[dict]:
        """The generation requests KoboldCpp received, oldest first, as it prints them to its console
        (``Input: {...}``, the JSON body it parsed)."""
        if self.log_path is None:
            return []
        bodies = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("Input: {"):
                with contextlib.suppress(ValueError):  # KoboldCpp cuts a body over 32000 characters short
                    bodies.append(json.loads(line[len("Input: ") :]))
        return bodies

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join("    " + line for line in tail) + f"\n    (full log: {self.log_path})"

    def stop(self, *, keep_log: bool = False) -> None:
        """End the process group (SIGTERM, then SIGKILL for anything left) and remove the log unless ``keep_log``."""
        process, self.process = self.process, None
        if process is not None:
            self._end(process)
        if not keep_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    @staticmethod
    def _end(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        _signal_group(process, signal.SIGKILL)  # anything left in its group, the process itself included
        process.wait(timeout=5)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # start_new_session made the process the leader of its own group


def _can_die_with_parent() -> bool:
    # The signal fires when the *thread* that started the child ends, so only from the main thread.
    return sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """Run in the child before exec: Linux kills KoboldCpp if pytest dies without stopping it (prctl PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except Exception:  # no prctl: the fixtures' finally blocks still stop it
        pass


@pytest.fixture(scope="session")
def koboldcpp_build() -> tuple[Path, Path]:
    """``(the built KoboldCpp folder, the SmolLM2 model)``; builds KoboldCpp the first time (minutes), then cached."""
    _skip_if_opted_out()
    from memgpt_backend_llamacpp.server import find_model

    from memgpt_core.errors import MemGPTError

    script = find_build_script()
    try:
        model = find_model()
    except MemGPTError as exc:
        pytest.fail(f"the KoboldCpp tests serve the SmolLM2 model and cannot find it:\n{exc}", pytrace=False)
    try:
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish building KoboldCpp in {BUILD_TIMEOUT} s", pytrace=False)
    folder = Path(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    if done.returncode != 0 or folder is None or not (folder / "koboldcpp.py").is_file():
        pytest.fail(
            f"building KoboldCpp with {script} failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}\n"
            "fix: it needs a C/C++ toolchain (make, gcc, g++) and python3; read the build log it names, fix the "
            f"cause, and run `bash {script}` by hand to check (or set {SKIP_ENV}=1 to skip the tests that need a "
            "server)",
            pytrace=False,
        )
    return folder, model


@pytest.fixture(scope="session")
def koboldcpp_process(koboldcpp_build: tuple[Path, Path]) -> Iterator[KoboldCpp]:
    """The session's KoboldCpp as a process: ``.url``, ``.context_size``, ``.model``, ``.received()``."""
    server = KoboldCpp(*koboldcpp_build)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def koboldcpp_server(koboldcpp_process: KoboldCpp) -> str:
    """The URL of a real KoboldCpp 1.76 (SmolLM2, ``--contextsize 4096``), shared by the whole session."""
    return koboldcpp_process.url


@pytest.fixture
def koboldcpp_factory(koboldcpp_build: tuple[Path, Path]) -> Iterator[Callable[..., KoboldCpp]]:
    """Start another KoboldCpp with extra flags: ``koboldcpp_factory("--password", "x", context_size=512)``."""
    started: list[KoboldCpp] = []

    def start(*flags: str, context_size: int = CONTEXT_SIZE) -> KoboldCpp:
        server = KoboldCpp(*koboldcpp_build, *flags, context_size=context_size)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()
