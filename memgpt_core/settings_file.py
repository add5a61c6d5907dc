"""The config file, ``$MEMGPT_HOME/config`` (INI): read with every problem told by file and line, written atomically.

The file is MemGPT 0.3's own format, so a MemGPT user's ``~/.memgpt/config`` works as it is. Facts from pymemgpt
0.3.25's ``memgpt/config.py`` (``MemGPTConfig.load`` and ``save``) and ``memgpt/cli/cli_config.py``:

- The location is ``$MEMGPT_CONFIG_PATH``, else ``~/.memgpt/config``. It is written by ``configparser.ConfigParser``
  (so ``key = value`` lines, a blank line after each section) in the order ``[defaults]`` (``preset``, ``persona``,
  ``human``), ``[model]`` (``model``, ``model_endpoint``, ``model_endpoint_type``, ``model_wrapper``,
  ``context_window``), ``[embedding]`` (``embedding_endpoint_type``, ``embedding_endpoint``, ``embedding_model``,
  ``embedding_dim``, ``embedding_chunk_size``), ``[archival_storage]``, ``[recall_storage]`` and
  ``[metadata_storage]`` (``type``, ``path``, ``uri``), ``[version]`` (``memgpt_version``) and ``[client]``
  (``anon_clientid``). A value that is None is left out, except the numbers, which are written through ``str()``,
  so ``None`` can appear as a value; it is read here as unset.
- ``model_endpoint_type`` is MemGPT's backend name (``webui``, ``llamacpp``, ``ollama`` ...), ``model`` the model a
  server serves (asked for Ollama and vLLM only), ``model_wrapper`` the prompt wrapper. Its defaults are persona
  ``sam_pov``, human ``basic`` and preset ``memgpt_chat``.

Our own keys live in sections MemGPT does not have: ``[sampling]`` (the settings in :mod:`memgpt_core.sampling`)
and ``[local]`` (``model_path``, ``max_tokens``, ``timeout``). MemGPT's storage, version and client keys are read
and ignored: memgpt keeps everything in one SQLite file under ``MEMGPT_HOME``. A key nobody knows is warned about
once (on stderr) and ignored; a value of the wrong type is an error naming the file, the line and the fix.
"""

from __future__ import annotations

import configparser
import contextlib
import difflib
import io
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from memgpt_core import sampling
from memgpt_core.errors import ConfigError

CONFIG_PATH_ENV = "MEMGPT_CONFIG_PATH"

MEMGPT_DEFAULT_PERSONA = "sam_pov"
MEMGPT_DEFAULT_HUMAN = "basic"
"""MemGPT 0.3's default persona and human names, which its ``configure`` writes into every config file."""


@dataclass(frozen=True)
class Key:
    """One key the file may hold: where, its type (``text``, ``int``, ``path`` or ``ignored``) and what it sets."""

    section: str
    name: str
    kind: str
    help: str


KEYS: tuple[Key, ...] = (
    Key("defaults", "persona", "text", "the persona of a new agent: a saved name or a file (MemGPT's key)"),
    Key("defaults", "human", "text", "what a new agent knows about you: a saved name or a file (MemGPT's key)"),
    Key("defaults", "preset", "ignored", "MemGPT's system-prompt preset; memgpt has one system prompt"),
    Key("defaults", "agent", "ignored", "read by MemGPT, never written; ignored"),
    Key("model", "model_endpoint_type", "text", "the backend: llamacpp, koboldcpp, webui, ollama, ..."),
    Key("model", "model_endpoint", "text", "the server's base URL"),
    Key("model", "model", "text", "the model the server should use, for servers that serve several"),
    Key("model", "model_wrapper", "text", "the prompt wrapper (what --model picks)"),
    Key("model", "context_window", "int", "the context size to budget for, in tokens"),
    Key("embedding", "embedding_endpoint_type", "text", "where archival vectors come from (MemGPT's key)"),
    Key("embedding", "embedding_endpoint", "text", "the embedding server's base URL (MemGPT's key)"),
    Key("embedding", "embedding_model", "text", "the embedding model (MemGPT's key)"),
    Key("embedding", "embedding_dim", "int", "the embedding size (MemGPT's key)"),
    Key("embedding", "embedding_chunk_size", "int", "tokens per passage when loading documents (MemGPT's key)"),
    *(
        Key(section, name, "ignored", "MemGPT's storage setting; memgpt keeps everything in SQLite under MEMGPT_HOME")
        for section in ("archival_storage", "recall_storage", "metadata_storage")
        for name in ("type", "path", "uri")
    ),
    Key("version", "memgpt_version", "ignored", "the MemGPT version that wrote the file"),
    Key("client", "anon_clientid", "ignored", "MemGPT's anonymous client id"),
    Key("local", "model_path", "path", "a GGUF file for the embedded llama.cpp server"),
    Key("local", "max_tokens", "int", "the output cap per agent step"),
    Key("local", "timeout", "float", "seconds one request may take (MEMGPT_TIMEOUT)"),
    *(Key("sampling", s.name, "sampling", s.help) for s in sampling.SETTINGS),
)
_BY_PLACE = {(k.section, k.name): k for k in KEYS}
_SECTIONS = list(dict.fromkeys(k.section for k in KEYS))
_WARNED: set[tuple[str, str, str]] = set()


@dataclass
class ConfigFile:
    """What the config file says; every field None (or empty) when the file says nothing about it."""

    path: Path
    exists: bool = False
    backend: str | None = None
    endpoint: str | None = None
    model_name: str | None = None
    wrapper: str | None = None
    context_window: int | None = None
    persona: str | None = None
    human: str | None = None
    model_path: str | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    sampling: dict[str, float | int] = field(default_factory=dict)
    embedding: dict[str, str | int] = field(default_factory=dict)
    """MemGPT's ``[embedding]`` keys as written there (``embedding_endpoint_type`` ...), for the embedder."""
    lines: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def where(self, section: str, key: str) -> str:
        """``[model] model_endpoint_type in /home/me/.memgpt/config, line 4``: for messages about a value."""
        line = self.lines.get((section, key))
        return f"[{section}] {key} in {self.path}" + (f", line {line}" if line else "")


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$MEMGPT_CONFIG_PATH``, else ``$MEMGPT_HOME/config`` (``~/.memgpt/config``, where MemGPT keeps it)."""
    from memgpt_core.storage import memgpt_home

    env = os.environ if env is None else env
    raw = (env.get(CONFIG_PATH_ENV) or "").strip()
    return Path(raw).expanduser() if raw else memgpt_home() / "config"


def load(path: Path | None = None, *, env: Mapping[str, str] | None = None, warn: TextIO | None = None) -> ConfigFile:
    """Read the config file. A missing file is an empty ConfigFile; one that cannot be read raises ConfigError
    naming the file, the line and the fix. Unknown keys are warned about on ``warn`` (stderr), once per process."""
    path = config_path(env) if path is None else path
    text = _read_text(path)
    found = ConfigFile(path=path)
    if text is None:
        return found
    found.exists = True
    parser = _parse(text, path)
    found.lines = _key_lines(text)
    for section in parser.sections():
        for key, raw in parser.items(section, raw=True):
            place = (section, key)
            spec = _BY_PLACE.get(place)
            line = found.lines.get(place)
            if spec is None:
                _warn_unknown(path, section, key, line, warn)
                continue
            value = raw.strip()
            if not value or value == "None" or spec.kind == "ignored":
                continue
            _store(found, spec, value, f"{path}, line {line}" if line else str(path))
    return found


def _read_text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(
            f"the config file {path} is a folder",
            fix=f"remove or rename that folder, or point {CONFIG_PATH_ENV} at a file",
        ) from None
    except PermissionError:
        raise ConfigError(
            f"the config file {path} cannot be read: permission denied",
            fix=f"make it readable (chmod u+r {path}), or point {CONFIG_PATH_ENV} at another file",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"the config file {path} cannot be read: {exc.strerror or exc}",
            fix=f"check the file, or point {CONFIG_PATH_ENV} at another one",
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"the config file {path} is not text (line {line} has bytes that are not UTF-8)",
            fix=f"fix line {line}, or delete the file and run `memgpt configure` to write a new one",
        ) from None


def _parse(text: str, path: Path) -> configparser.ConfigParser:
    # No interpolation: a URL or a path may hold a '%', and MemGPT never wrote one that needed it.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"the config file {path}, line {exc.lineno}: {exc.line.strip()!r} comes before any [section] heading",
            fix=f"put the settings under a heading such as [model] (see docs/settings.md), or delete line {exc.lineno}",
        ) from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(
            f"the config file {path}, line {exc.lineno}: the section [{exc.section}] appears a second time",
            fix=f"merge the two [{exc.section}] sections into one",
        ) from None
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(
            f"the config file {path}, line {exc.lineno}: {exc.option} is set a second time in [{exc.section}]",
            fix=f"keep one of the two {exc.option} lines in [{exc.section}]",
        ) from None
    except configparser.ParsingError as exc:
        lineno = exc.errors[0][0]
        lines = text.splitlines()
        line = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
        raise ConfigError(
            f"the config file {path}, line {lineno}: {line!r} is not a `key = value` line",
            fix=f"write line {lineno} as `key = value` (or start it with # to make it a comment)",
        ) from None
    except configparser.Error as exc:
        raise ConfigError(
            f"the config file {path} cannot be read: {exc}", fix="fix it, or delete it and run `memgpt configure`"
        ) from None
    return parser


_SECTION_LINE = re.compile(r"\[(?P<name>[^\]]+)\]")
_KEY_LINE = re.compile(r"(?P<key>[^=:\s][^=:]*?)\s*[=:]")


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """``(section, key) -> line number``, for messages (configparser keeps no line numbers of its own)."""
    lines: dict[tuple[str, str], int] = {}
    section = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line[:1].isspace() or line.lstrip()[:1] in "#;":
            continue
        heading = _SECTION_LINE.match(line.strip())
        if heading:
            section = heading.group("name")
            lines[(section, "")] = number
            continue
        key = _KEY_LINE.match(line)
        if key and section is not None:
            lines.setdefault((section, key.group("key").strip().lower()), number)
    return lines


def _warn_unknown(path: Path, section: str, key: str, line: int | None, out: TextIO | None) -> None:
    marker = (str(path), section, key)
    if marker in _WARNED:
        return
    _WARNED.add(marker)
    where = f"{path}, line {line}" if line else str(path)
    if section not in _SECTIONS:
        names = difflib.get_close_matches(section, _SECTIONS, n=1)
        hint = f" (did you mean [{names[0]}]?)" if names else ""
        what = f"{key} in the unknown section [{section}]{hint}"
    else:
        known = [name for (s, name) in _BY_PLACE if s == section]
        names = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {names[0]}?" if names else f"; [{section}] knows {', '.join(known)}"
        what = f"unknown key {key} in [{section}]{hint}"
    (out or sys.stderr).write(f"memgpt: warning: {where}: {what} (ignored)\n")


def _store(found: ConfigFile, spec: Key, value: str, where: str) -> None:
    if spec.kind == "sampling":
        found.sampling.update(sampling.check({spec.name: value}, where=f"the config file {where}"))
        return
    converted: Any = value
    if spec.kind in ("int", "float"):
        converted = _number(spec, value, where)
    elif spec.kind == "path":
        converted = str(Path(value).expanduser())
    if spec.section == "embedding":
        found.embedding[spec.name] = converted
        return
    attribute = {
        "model_endpoint_type": "backend",
        "model_endpoint": "endpoint",
        "model": "model_name",
        "model_wrapper": "wrapper",
    }.get(spec.name, spec.name)
    setattr(found, attribute, converted)


def _number(spec: Key, value: str, where: str) -> int | float:
    whole = spec.kind == "int"
    try:
        number: int | float = int(value) if whole else float(value)
    except ValueError:
        number = -1
    if not number > 0 or number == float("inf"):
        example = {"context_window": "8192", "max_tokens": "512", "timeout": "1200"}.get(spec.name, "384")
        kind = "a whole number above 0" if whole else "a number of seconds above 0"
        raise ConfigError(
            f"the config file {where}: [{spec.section}] {spec.name} = {value!r} is not {kind}",
            fix=f"write `{spec.name} = {example}` there (or delete the line to leave it unset)",
        )
    return number


# -- writing -----------------------------------------------------------------------------------------------------


def render(values: Mapping[tuple[str, str], str | None], *, path: Path) -> str:
    """The file's new text: what it holds now (every section and key, MemGPT's included), with ``values`` set
    (None removes a key). A new file's sections come in MemGPT's order, then ours."""
    current = _read_text(path)
    parser = _parse(current, path) if current is not None else configparser.ConfigParser(interpolation=None)
    for (section, key), value in sorted(values.items(), key=lambda item: _order(item[0])):
        if value is None:
            if parser.has_section(section):
                parser.remove_option(section, key)
                if not parser.items(section, raw=True):
                    parser.remove_section(section)
            continue
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, key, str(value))
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def _order(place: tuple[str, str]) -> tuple[int, int]:
    keys = list(_BY_PLACE)
    section = _SECTIONS.index(place[0]) if place[0] in _SECTIONS else len(_SECTIONS)
    return section, keys.index(place) if place in _BY_PLACE else len(keys)


def write(path: Path, text: str) -> None:
    """Replace the file with ``text`` atomically: a temporary file beside it, flushed to disk, then renamed over it.
    A kill or Ctrl-C at any instant leaves either the old file whole or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):
            os.chmod(temporary, path.stat().st_mode & 0o777)  # keep the old file's permissions
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself, on disk (POSIX; Windows cannot open a folder)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _remove_stale(path: Path) -> None:
    """Remove the temporary files of writers that were killed before their rename (their process is gone)."""
    if os.name == "nt":  # os.kill(pid, 0) would end the process there, not probe it
        return
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        pid = leftover.name[len(path.name) + 2 : -4]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: is that process still alive?
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                leftover.unlink()
        except OSError:  # alive under another user, or no way to tell: leave it
            pass
