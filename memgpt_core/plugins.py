"""Plugin loading and the typed façade over it: the only module that touches ``pm.hook``.

Entry points (group ``memgpt``) are loaded one at a time. A plugin that fails to import, fails to register, or
registers a name another distribution owns is recorded with its error and left out; every command keeps working.
``MEMGPT_LOAD_PLUGINS`` picks which distributions load (comma-separated, empty for none) and
``MEMGPT_STRICT_PLUGINS=1`` re-raises load errors, for plugin authors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from memgpt_core import distributions, hookspecs
from memgpt_core.errors import DuplicateNameError, MemGPTError, NotInstalledError, PluginError

if TYPE_CHECKING:
    import click

    from memgpt_core.backend import Backend
    from memgpt_core.grammar import GrammarProvider
    from memgpt_core.wrapper import Wrapper

ENTRY_POINT_GROUP = "memgpt"
CORE_DISTRIBUTION = "memgpt-core"
DEFAULT_PLUGINS = ("memgpt_core.default_plugins.grammars",)
KINDS = ("backends", "wrappers", "grammars")


# Plain classes rather than dataclasses below: building a dataclass runs generated code, and this module is imported
# by every `memgpt` command (it measured several milliseconds of start-up; see docs/benchmarks.md).


class PluginInfo:
    """One loaded (or broken) plugin: where it came from and what it registered.

    ``name`` is the distribution name, or the module name for a built-in; ``error`` is None, or the one-line error
    that made the plugin broken.
    """

    __slots__ = (
        "backends",
        "builtin",
        "commands",
        "error",
        "grammars",
        "hooks",
        "module",
        "name",
        "version",
        "wrappers",
    )

    def __init__(self, name: str, version: str | None = None, module: str = "", builtin: bool = False) -> None:
        self.name = name
        self.version = version
        self.module = module
        self.builtin = builtin
        self.hooks: list[str] = []
        self.backends: list[str] = []
        self.wrappers: list[str] = []
        self.grammars: list[str] = []
        self.commands: list[str] = []
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"PluginInfo({self.as_json()!r})"

    @property
    def status(self) -> str:
        return "broken" if self.error else "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "hooks": sorted(self.hooks),
            "backends": sorted(self.backends),
            "wrappers": sorted(self.wrappers),
            "grammars": sorted(self.grammars),
            "commands": sorted(self.commands),
            "error": self.error,
        }


class _Registered:
    __slots__ = ("obj", "plugin")

    def __init__(self, obj: Any, plugin: PluginInfo) -> None:
        self.obj = obj
        self.plugin = plugin


class _Host:
    """Loads plugins once per process and collects each kind of registration the first time it is asked for."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("memgpt")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._by_module: dict[int, PluginInfo] = {}
        self._registered: dict[str, dict[str, _Registered]] = {}
        self._commands: dict[str, click.Command] | None = None
        self._command_owner: dict[str, PluginInfo] = {}
        self.left_out: set[str] = set()
        self.not_found: list[str] = []
        self._load()

    # -- loading -----------------------------------------------------------------------------------------------

    def _load(self) -> None:
        import importlib

        for module_name in DEFAULT_PLUGINS:
            info = PluginInfo(name=module_name, module=module_name, builtin=True)
            self._add(info, lambda m=module_name: importlib.import_module(m))

        selected = _selected_distributions()
        seen: set[str] = set()
        for ep in _entry_points():
            seen.add(_canonical(ep.dist_name))
            if selected is not None and _canonical(ep.dist_name) not in selected:
                self.left_out.add(ep.dist_name)
                continue
            info = PluginInfo(name=ep.dist_name, version=ep.version, module=ep.value)
            if ep.dist_name in self.plugins:  # one distribution with two entry points: keep them apart in the listing
                info.name = f"{ep.dist_name} ({ep.name})"
            self._add(info, ep.load)
        self.not_found = sorted(selected - seen) if selected is not None else []

    def _add(self, info: PluginInfo, load: Callable[[], ModuleType]) -> None:
        self.plugins[info.name] = info
        try:
            module = load()
            if self.pm.is_registered(module):  # a second entry point naming a module already loaded: one plugin
                del self.plugins[info.name]
                return
            self.pm.register(module, name=info.name)
        except (Exception, SystemExit) as exc:  # SystemExit too: a plugin calling sys.exit() must not end memgpt
            self._broken(info, exc, "could not be loaded")
            return
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(module)
            self._broken(info, exc, "implements a hook that does not exist")
            return
        info.hooks = sorted(impl.name for impl in self._impls_of(module))
        self._by_module[id(module)] = info

    def _impls_of(self, module: ModuleType) -> list[Any]:
        return list(self.pm.get_hookcallers(module) or [])

    def _broken(self, info: PluginInfo, exc: BaseException, what: str) -> None:
        """Record a plugin as broken and withdraw everything it registered, so a half-loaded plugin is never used."""
        info.error = f"{what}: {_one_line(exc)}"
        for table in self._registered.values():
            for name in [n for n, reg in table.items() if reg.plugin is info]:
                del table[name]
        for kind in KINDS:
            getattr(info, kind).clear()
        if _strict():
            # For plugin authors: the original exception, with its traceback pointing into the plugin.
            raise exc

    # -- collecting registrations -------------------------------------------------------------------------------

    def registered(self, kind: str) -> dict[str, _Registered]:
        if kind not in self._registered:
            self._registered[kind] = self._collect(kind)
        return self._registered[kind]

    def _collect(self, kind: str) -> dict[str, _Registered]:
        found: dict[str, _Registered] = {}
        hook = getattr(self.pm.hook, f"register_{kind}")
        # Each implementation is called on its own so that one failing plugin cannot hide the others.
        for impl in hook.get_hookimpls():  # registration order: built-ins, then distributions sorted by name
            info = self._by_module.get(id(impl.plugin))
            if info is None or info.error:
                continue
            pending: dict[str, _Registered] = {}
            try:
                _call(impl, _Registrar(kind, info, found, pending))
            except (Exception, SystemExit) as exc:
                self._broken(info, exc, f"failed in register_{kind}")
                continue
            found.update(pending)
            getattr(info, kind).extend(pending)
        return found

    def commands(self, cli: click.Group, reserved: Iterable[str]) -> list[str]:
        """Add every plugin's commands to ``cli``; collected once per host, added again to each new group."""
        if self._commands is None:
            self._commands = self._collect_commands({*reserved, *cli.commands})
        added = []
        for name, command in self._commands.items():
            if name not in cli.commands:
                cli.add_command(command, name)
                added.append(name)
        return added

    def _collect_commands(self, reserved: set[str]) -> dict[str, click.Command]:
        import click

        # Plugins add to a scratch group, so that one cannot replace a built-in or another plugin's command.
        scratch = click.Group("memgpt")
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self._by_module.get(id(impl.plugin))
            if info is None or info.error:
                continue
            before = dict(scratch.commands)
            try:
                _call(impl, scratch)
                replaced = sorted(n for n, cmd in before.items() if scratch.commands.get(n) is not cmd)
                taken = sorted((set(scratch.commands) - set(before)) & reserved)
                if replaced or taken:
                    owners = [f"{n} (from {self._command_owner[n].name})" for n in replaced]
                    owners += [f"{n} (built into memgpt)" for n in taken]
                    raise DuplicateNameError(f"it tried to replace the command(s) {', '.join(owners)}")
            except (Exception, SystemExit) as exc:
                scratch.commands = before  # withdraw what the failing hook added
                self._broken(info, exc, "failed in register_commands")
                continue
            for name in sorted(set(scratch.commands) - set(before)):
                self._command_owner[name] = info
                info.commands.append(name)
        return dict(scratch.commands)


class _Registrar:
    """The ``register`` callable a hook receives: it records names, and refuses one already taken."""

    __slots__ = ("found", "kind", "pending", "plugin")

    def __init__(
        self, kind: str, plugin: PluginInfo, found: dict[str, _Registered], pending: dict[str, _Registered]
    ) -> None:
        self.kind = kind
        self.plugin = plugin
        self.found = found
        self.pending = pending

    def __call__(self, obj: Any, *, name: str | None = None, aliases: tuple[str, ...] = ()) -> None:
        if name:
            primary: str | None = name
        elif self.kind == "wrappers":
            from memgpt_core.wrapper import declared_name

            primary = declared_name(obj)
        else:
            primary = getattr(obj, "name", None)  # a declared ClassVar of Backend and GrammarProvider
        if not isinstance(primary, str) or not primary:
            raise PluginError(
                f"plugin {self.plugin.name} registered {obj!r} without a name",
                fix="set a `name` class attribute or pass register(..., name='...')",
            )
        problem = _contract_problem(self.kind, obj)
        if problem:
            raise PluginError(f"plugin {self.plugin.name} registered {primary!r}, but {problem}")
        for each in (primary, *aliases):
            owner = self.found.get(each) or self.pending.get(each)
            if owner is not None:
                raise DuplicateNameError(
                    f"{self.kind[:-1]} name {each!r} is registered by both {owner.plugin.name} and {self.plugin.name}",
                    fix=f"uninstall one of them (memgpt plugins uninstall {self.plugin.name})",
                )
            self.pending[each] = _Registered(obj, self.plugin)


_host: _Host | None = None


def _get_host() -> _Host:
    global _host
    if _host is None:
        _host = _Host()
    return _host


def reset() -> None:
    """Forget everything loaded, so the next call loads plugins again (tests, and after ``plugins install``)."""
    global _host
    _host = None
    _grammar_instances.clear()


# -- the typed façade ----------------------------------------------------------------------------------------------


def get_plugins(*, include_builtins: bool = False) -> list[PluginInfo]:
    """Every plugin found, broken ones included, sorted by name, with what each registered.

    Commands appear only once the command line has been built (``add_commands``), as in ``memgpt plugins list``.
    """
    host = _get_host()
    for kind in KINDS:
        host.registered(kind)
    return sorted(
        (p for p in host.plugins.values() if include_builtins or not p.builtin),
        key=lambda p: p.name.lower(),
    )


def selection() -> tuple[list[str], list[str]] | None:
    """With ``MEMGPT_LOAD_PLUGINS`` set: the installed distributions it left out, and the names in it that match no
    installed plugin (a typo, say). None when the variable is not set."""
    if os.environ.get("MEMGPT_LOAD_PLUGINS") is None:
        return None
    host = _get_host()
    return sorted(host.left_out, key=str.lower), list(host.not_found)


def get_backends() -> dict[str, type[Backend]]:
    """Registered backend classes by name (aliases included)."""
    return {name: reg.obj for name, reg in sorted(_get_host().registered("backends").items())}


def get_wrappers() -> dict[str, Any]:
    """Registered wrappers by name (aliases included): a class, or an instance for a MemGPT-style registration."""
    return {name: reg.obj for name, reg in sorted(_get_host().registered("wrappers").items())}


def get_grammars() -> dict[str, type[GrammarProvider]]:
    """Registered grammar-provider classes by name (aliases included)."""
    return {name: reg.obj for name, reg in sorted(_get_host().registered("grammars").items())}


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``; instantiate it with the endpoint."""
    return _lookup("backends", "backend", name)


def get_wrapper(name: str) -> Wrapper:
    """A fresh, ready wrapper registered as ``name``, behind core's one typed interface
    (:class:`memgpt_core.wrapper.Wrapper`), whatever kind of class the plugin registered."""
    from memgpt_core.wrapper import Wrapper

    registered = _lookup("wrappers", "wrapper", name)
    owner = plugin_of("wrappers", name)
    return _instantiate("wrappers", "wrapper", name, lambda: Wrapper.make(registered, name=name, distribution=owner))


_grammar_instances: dict[str, GrammarProvider] = {}


def get_grammar(name: str) -> GrammarProvider:
    """The grammar provider registered as ``name``. One shared instance per name, so its cache is shared too."""
    cls = _lookup("grammars", "grammar provider", name)
    instance = _grammar_instances.get(name)
    if instance is None or type(instance) is not cls:
        instance = _grammar_instances[name] = _instantiate("grammars", "grammar provider", name, cls)
    return instance


def plugin_of(kind: str, name: str) -> str:
    """The distribution that registered ``name`` (kind is backends, wrappers or grammars)."""
    _lookup(kind, kind[:-1], name)  # the same NotInstalledError as get_backend & co. for an unknown name
    return _get_host().registered(kind)[name].plugin.name


def add_commands(cli: click.Group, *, reserved: Iterable[str] = ()) -> list[str]:
    """Add every plugin's commands to ``cli`` and return the names added.

    A plugin may not take a name in ``reserved`` (commands built into memgpt) or another plugin's command name: such
    a plugin is marked broken and its commands are left out.
    """
    return _get_host().commands(cli, reserved)


def _instantiate(kind: str, label: str, name: str, cls: Any) -> Any:
    """``cls()``, with a plugin's failure told as a sentence naming the plugin."""
    try:
        return cls()
    except MemGPTError:
        raise
    except Exception as exc:
        owner = plugin_of(kind, name)
        raise PluginError(
            f"the {label} {name!r} from {owner} could not be created: {_one_line(exc)}",
            fix=f"report it to the authors of {owner}, or try another {label}",
        ) from exc


def _lookup(kind: str, label: str, name: str) -> Any:
    table = _get_host().registered(kind)
    if name in table:
        return table[name].obj
    installed = ", ".join(sorted(table)) or "none"
    broken = [p.name for p in _get_host().plugins.values() if p.error]
    fix = f"installed {kind}: {installed}"
    if broken:
        fix += f"; broken plugins (see `memgpt plugins list`): {', '.join(sorted(broken))}"
    message = f"no {label} named {name!r} is installed"
    ours = distributions.provider(kind, name)
    if ours is not None:  # one of memgpt's own plugins: say which distribution brings it, and how to install that
        message += f"; it comes with {ours}"
        fix = f"install {ours}: {distributions.install_command(ours)}; {fix}"
    raise NotInstalledError(message, fix=fix)


# -- helpers -------------------------------------------------------------------------------------------------------


class _EntryPoint:
    """One entry point of the group ``memgpt``, and the distribution that declares it."""

    __slots__ = ("dist_name", "name", "value", "version")

    def __init__(self, name: str, value: str, dist_name: str, version: str | None) -> None:
        self.name = name
        self.value = value
        self.dist_name = dist_name
        self.version = version

    def load(self) -> Any:
        import importlib

        module_name, _, attr = self.value.partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def _entry_points() -> list[_EntryPoint]:
    """Entry points of the group ``memgpt`` from every installed distribution, sorted by distribution name.

    This reads the ``*.dist-info`` / ``*.egg-info`` folders on ``sys.path`` directly, as importlib.metadata does, but
    without importing it: importlib.metadata and the email parser it uses for METADATA were the largest single cost
    of ``memgpt --help`` (see docs/benchmarks.md). As in importlib.metadata, the first distribution of a name found on
    ``sys.path`` wins. Distributions inside zip files are not seen; pip never installs those.
    """
    import sys

    seen: set[str] = set()
    found: list[_EntryPoint] = []
    for entry in sys.path:
        try:
            folders = sorted(os.listdir(entry or "."))
        except OSError:  # a zip file, or a folder that does not exist
            continue
        for folder in folders:
            if folder.endswith(".dist-info"):
                key = _canonical(folder[: -len(".dist-info")].split("-", 1)[0])
            elif folder.endswith(".egg-info"):
                key = _canonical(folder[: -len(".egg-info")].split("-", 1)[0])
            else:
                continue
            if key in seen:
                continue
            path = os.path.join(entry or ".", folder)
            if not os.path.isdir(path):
                continue
            seen.add(key)
            declared = _read_group(os.path.join(path, "entry_points.txt"), ENTRY_POINT_GROUP)
            if declared:
                name, version = _read_name_version(path, key)
                found.extend(_EntryPoint(ep_name, value, name, version) for ep_name, value in declared)
    return sorted(found, key=lambda ep: (_canonical(ep.dist_name), ep.name))


def _read_group(path: str, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of ``[group]`` in an entry_points.txt (an INI file), in file order."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return []
    found, inside = [], False
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
        elif inside and "=" in line:
            name, _, value = line.partition("=")
            found.append((name.strip(), value.strip()))
    return found


def _read_name_version(path: str, fallback: str) -> tuple[str, str | None]:
    """Name and Version from the header of METADATA (dist-info) or PKG-INFO (egg-info)."""
    name, version = fallback, None
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(path, filename), encoding="utf-8") as file:
                for line in file:
                    if not line.strip():
                        break  # the header ends at the first blank line; the long description follows
                    key, _, value = line.partition(":")
                    if key == "Name":
                        name = value.strip()
                    elif key == "Version":
                        version = value.strip()
        except OSError:
            continue
        break
    return name, version


def _selected_distributions() -> set[str] | None:
    raw = os.environ.get("MEMGPT_LOAD_PLUGINS")
    if raw is None:
        return None
    return {_canonical(part) for part in raw.split(",") if part.strip()}


def _strict() -> bool:
    return os.environ.get("MEMGPT_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _call(impl: Any, value: Any) -> None:
    """Call one hook implementation on its own; pluggy lets an implementation omit the argument."""
    impl.function(*([value] if impl.argnames else []))


def _contract_problem(kind: str, obj: Any) -> str | None:
    """Why ``obj`` cannot be registered as ``kind``, in words, or None. Cheap: the contracts import nothing heavy.

    A wrapper may be an instance, as MemGPT made its ``-grammar`` variants with constructor arguments."""
    if not isinstance(obj, type) and kind != "wrappers":
        return f"it is {type(obj).__name__} instance, not a class; register the class itself"
    if kind == "backends":
        from memgpt_core.backend import Backend

        if not issubclass(obj, Backend):
            return "it does not subclass memgpt_core.backend.Backend"
    elif kind == "grammars":
        from memgpt_core.grammar import GrammarProvider

        if not issubclass(obj, GrammarProvider):
            return "it does not subclass memgpt_core.grammar.GrammarProvider"
    elif kind == "wrappers":
        from memgpt_core.wrapper import registration_problem

        return registration_problem(obj)
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, MemGPTError) and exc.fix:  # keep the fix, on the same line
        text = f"{exc.message} (fix: {exc.fix})"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = " ".join(lines[:1])
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
