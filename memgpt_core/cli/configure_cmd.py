"""``memgpt configure``: set the server once, in the config file, asked in MemGPT's order or given as flags.

The questions, as MemGPT 0.3's ``memgpt configure`` asks them for a local model: the backend (from the installed
ones), the endpoint (checked live: something must answer there), the model name where the backend takes one, the
wrapper (with the recommendation ``memgpt doctor`` makes by default), and the context window (read from the server
where it says). Every question is a flag too, and ``--yes`` (or no terminal) asks nothing, so scripts configure
without a terminal. The file is replaced atomically, and only at the end: Ctrl-C or a kill leaves it as it was.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from memgpt_core.backend import Backend
    from memgpt_core.settings_file import ConfigFile

EMBEDDED = "embedded"
"""The choice that configures no server: memgpt starts llama.cpp with a small model itself."""
MEMGPT_DEFAULT_CONTEXT = 8192
"""MemGPT's default context window (``LLM_MAX_TOKENS["DEFAULT"]``), offered when the server does not say."""
CHECK_TIMEOUT = 30.0
"""Seconds each request of the live check may take."""
READY_TIMEOUT = 120.0
"""Seconds to wait for a server that is still loading its model."""


@dataclass
class Live:
    """What the live check learnt about the server."""

    backend: Backend
    model: str | None
    window: int | None


class Asker:
    """Asks on a terminal, or takes the default at once when not interactive (``--yes``, or no terminal)."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def text(self, label: str, default: str | None, convert: Callable[[str], Any] | None = None) -> Any:
        while True:
            if not self.interactive:
                return convert(default or "") if convert else default
            answer = click.prompt(label, default=default or "", show_default=bool(default))
            if convert is None:
                return answer.strip() or None
            try:
                return convert(answer.strip())
            except click.BadParameter as exc:
                click.echo(click.style(f"  {exc.message}", fg="yellow"))

    def choice(self, label: str, options: Sequence[tuple[str, str]], default: str) -> str:
        if not self.interactive:
            return default
        names = [name for name, _ in options]
        width = max(len(name) for name in names)
        for number, (name, about) in enumerate(options, start=1):
            click.echo(f"  {number:>2}) {name.ljust(width)}  {about}".rstrip())
        while True:
            answer = click.prompt(label, default=default).strip()
            if answer.isdigit() and 1 <= int(answer) <= len(names):
                return names[int(answer) - 1]
            if answer in names:
                return answer
            click.echo(click.style(f"  choose a number from 1 to {len(names)}, or one of the names", fg="yellow"))


@click.command()
@click.option("--backend", "--model-endpoint-type", "backend", metavar="TYPE", help="The backend, or 'embedded'.")
@click.option("--endpoint", "--model-endpoint", "endpoint", metavar="URL", help="The server's base URL.")
@click.option("--model-name", metavar="NAME", help="The model the server should use (Ollama, vLLM ...).")
@click.option("--model", "--model-wrapper", "wrapper", metavar="WRAPPER", help="The prompt wrapper.")
@click.option("--context-window", type=click.IntRange(min=256), help="The context size to budget for, in tokens.")
@click.option("--model-path", type=click.Path(dir_okay=False), help="A GGUF file, for the embedded server.")
@click.option("--persona", metavar="NAME|FILE", help="The default persona of new agents.")
@click.option("--human", metavar="NAME|FILE", help="The default human of new agents.")
@click.option("--api-key", envvar="MEMGPT_API_KEY", help="A key for the check (never written to the file).")
@click.option("--no-check", is_flag=True, help="Do not contact the server (it need not be running).")
@click.option(
    "--yes", "-y", "assume_yes", is_flag=True, help="Ask nothing: flags, then the file's values, then defaults."
)
def configure(
    backend: str | None,
    endpoint: str | None,
    model_name: str | None,
    wrapper: str | None,
    context_window: int | None,
    model_path: str | None,
    persona: str | None,
    human: str | None,
    api_key: str | None,
    no_check: bool,
    assume_yes: bool,
) -> None:
    """Set the server once: backend, endpoint, wrapper and context window, written to the config file."""
    from memgpt_core import settings_file

    path = settings_file.config_path()
    current = settings_file.load(path)
    asker = Asker(interactive=not assume_yes and sys.stdin.isatty())
    if asker.interactive:
        click.echo(f"memgpt configure: the answers go to {path} (Ctrl-C leaves it as it is)")
    try:
        values = _ask_all(
            asker,
            current,
            backend=backend,
            endpoint=endpoint,
            model_name=model_name,
            wrapper=wrapper,
            context_window=context_window,
            model_path=model_path,
            api_key=api_key,
            check=not no_check,
        )
    except (KeyboardInterrupt, click.Abort):
        click.echo(f"\ncancelled: {path} is as it was", err=True)
        raise SystemExit(130) from None
    if persona:
        values[("defaults", "persona")] = persona
    if human:
        values[("defaults", "human")] = human
    text = settings_file.render(values, path=path)
    try:
        settings_file.write(path, text)
    except OSError as exc:
        from memgpt_core.errors import ConfigError

        raise ConfigError(
            f"cannot write the config file {path}: {exc.strerror or exc}",
            fix=f"check that its folder is writable, or point {settings_file.CONFIG_PATH_ENV} elsewhere",
        ) from None
    click.echo(f"wrote {path}:")
    click.echo(text.rstrip())
    _warn_about_variables()


def _ask_all(
    asker: Asker,
    current: ConfigFile,
    *,
    backend: str | None,
    endpoint: str | None,
    model_name: str | None,
    wrapper: str | None,
    context_window: int | None,
    model_path: str | None,
    api_key: str | None,
    check: bool,
) -> dict[tuple[str, str], str | None]:
    from memgpt_core import plugins
    from memgpt_core.errors import ConfigError, MemGPTError

    backends = plugins.get_backends()
    can_embed = any(cls.capabilities.embedded for cls in backends.values())
    options = [(EMBEDDED, "no server: memgpt starts llama.cpp with a small model itself")] if can_embed else []
    options += [(name, cls.description) for name, cls in sorted(backends.items())]
    names = [name for name, _ in options]
    if backend is not None and backend not in names:
        raise ConfigError(
            f"there is no backend named {backend!r} here",
            fix=f"use one of {', '.join(names)} (more come as plugins: `memgpt plugins list --all`)",
        )
    default = backend or current.backend or os.environ.get("BACKEND_TYPE") or (EMBEDDED if can_embed else names[0])
    chosen = backend or asker.choice("Backend", options, default if default in names else names[0])

    if chosen == EMBEDDED:
        return _embedded(asker, current, wrapper=wrapper, context_window=context_window, model_path=model_path)

    cls = backends[chosen]
    same = current.backend == chosen  # the file's endpoint and model name belong to its own backend only
    endpoint_default = endpoint or (current.endpoint if same else None) or os.environ.get("OPENAI_API_BASE")
    model_default = model_name or (current.model_name if same else None) or os.environ.get("MEMGPT_MODEL_NAME")
    from memgpt_core.config import takes_model_name

    while True:
        if endpoint is not None:
            url = cls.normalize_endpoint(endpoint)  # a wrong URL is a ConfigError showing the right one
        else:
            url = asker.text("Endpoint (the server's base URL)", endpoint_default or cls.default_endpoint, _url(cls))
        name = model_default
        if takes_model_name(cls) and model_name is None:
            name = asker.text("Model name (empty: the server's own)", model_default)
        live = None
        if check:
            try:
                live = _check(cls, url, name, api_key)
            except MemGPTError as exc:
                if not asker.interactive or endpoint is not None:
                    raise
                click.echo(click.style(f"  {exc}", fg="red"))
                click.echo("  (answer again, or Ctrl-C to stop; --no-check skips this check)")
                endpoint_default, model_default = url, name
                continue
        break

    from memgpt_core.selection import default_wrapper_name

    recommended = default_wrapper_name(live.backend if live else cls)
    wrappers = sorted(plugins.get_wrappers())
    if wrapper is not None and wrapper not in wrappers:
        raise ConfigError(f"there is no wrapper named {wrapper!r} here", fix=f"use one of {', '.join(wrappers)}")
    if asker.interactive and wrapper is None:
        click.echo(
            f"Wrapper: recommended {recommended}, the one `memgpt doctor` picks for this backend by default "
            "(its parse-rate check, which takes minutes, measures others: run `memgpt doctor --model NAME`)"
        )
    wrapper_default = wrapper or (current.wrapper if current.wrapper in wrappers else None) or recommended
    chosen_wrapper = wrapper or asker.choice("Wrapper", [(w, "") for w in wrappers], wrapper_default)

    server_window = live.window if live else None
    window_default = context_window or server_window or current.context_window or MEMGPT_DEFAULT_CONTEXT
    if asker.interactive and context_window is None:
        said = f"the server says {server_window}" if server_window else "the server does not say"
        click.echo(f"Context window: {said}")
    window = context_window or asker.text("Context window (tokens)", str(window_default), _window)
    return {
        ("model", "model_endpoint_type"): chosen,
        ("model", "model_endpoint"): url,
        ("model", "model"): name if takes_model_name(cls) else None,
        ("model", "model_wrapper"): chosen_wrapper,
        ("model", "context_window"): str(window),
        ("local", "model_path"): None,
    }


def _embedded(
    asker: Asker, current: ConfigFile, *, wrapper: str | None, context_window: int | None, model_path: str | None
) -> dict[tuple[str, str], str | None]:
    """No server: remove the file's server, so the embedded default runs (with ``model_path`` if given)."""
    from memgpt_core import plugins
    from memgpt_core.errors import ConfigError

    if wrapper is not None and wrapper not in plugins.get_wrappers():
        raise ConfigError(
            f"there is no wrapper named {wrapper!r} here", fix=f"use one of {', '.join(sorted(plugins.get_wrappers()))}"
        )
    path = model_path or asker.text("GGUF model file (empty: the bundled SmolLM2)", current.model_path or "", _gguf)
    if model_path:
        path = _gguf(model_path)
    return {
        ("model", "model_endpoint_type"): None,
        ("model", "model_endpoint"): None,
        ("model", "model"): None,
        ("model", "model_wrapper"): wrapper,  # None: the embedded model's own format (auto-grammar)
        ("model", "context_window"): str(context_window) if context_window else None,
        ("local", "model_path"): path or None,
    }


def _url(cls: type[Backend]) -> Callable[[str], str]:
    def convert(value: str) -> str:
        from memgpt_core.errors import ConfigError

        try:
            return cls.normalize_endpoint(value or cls.default_endpoint)
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


def _window(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a whole number of tokens (for example 8192)") from None
    if number < 256:
        raise click.BadParameter("the context window must be at least 256 tokens")
    return number


def _gguf(value: str) -> str:
    if not value:
        return ""
    from pathlib import Path

    path = Path(value).expanduser()
    if not path.is_file():
        raise click.BadParameter(f"there is no file at {path}")
    return str(path.resolve())


def _check(cls: type[Backend], url: str, model: str | None, api_key: str | None) -> Live:
    """Something must answer at ``url``, and the backend must get ready there; read its model and context."""
    from memgpt_core.backend import backend_failed
    from memgpt_core.config import BackendSettings, make_backend
    from memgpt_core.errors import BackendHTTPError, BackendResponseError, MemGPTError
    from memgpt_core.http import request_json

    click.echo(f"  checking {url} ...", err=True)
    # Anything that answers HTTP counts here; the backend's own calls below check that it is the right server.
    with contextlib.suppress(BackendHTTPError, BackendResponseError):
        request_json("GET", url + "/", backend=cls.name, api_key=api_key, timeout=CHECK_TIMEOUT, expect_json=False)
    settings = BackendSettings(backend=cls.name, endpoint=url, api_key=api_key, timeout=CHECK_TIMEOUT, model_name=model)
    backend = make_backend(cls, settings)
    try:
        backend.wait_until_ready(
            timeout=READY_TIMEOUT, progress=lambda line: click.echo(click.style(f"  {line}", dim=True), err=True)
        )
        served = backend.model_name()
        window = backend.context_window() if backend.capabilities.server_context else None
    except MemGPTError:
        raise
    except Exception as exc:  # a bug in the backend plugin: one line naming it
        raise backend_failed(backend, "checking the server", exc) from exc
    about = [f"model {served}" if served else None, f"context {window} tokens" if window else None]
    detail = ", ".join(a for a in about if a) or "it answers"
    click.echo(click.style(f"  ok: {cls.name} at {url}: {detail}", fg="green"), err=True)
    return Live(backend=backend, model=served, window=window)


def _warn_about_variables() -> None:
    """The variables win over the file; say so when they are set, or the new file would seem to do nothing."""
    from memgpt_core.config import ENV_NAMES

    set_here = [var for var in ENV_NAMES.values() if (os.environ.get(var) or "").strip()]
    if set_here:
        click.echo(
            click.style(
                f"note: {', '.join(set_here)} {'is' if len(set_here) == 1 else 'are'} set in this shell, and "
                "variables win over the config file: unset them to use what was written",
                fg="yellow",
            ),
            err=True,
        )
