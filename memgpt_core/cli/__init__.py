"""The ``memgpt`` command line. Each command lives in its own light module; heavy imports happen inside commands."""

from __future__ import annotations

import click

from memgpt_core.errors import MemGPTError

# name -> "module:attribute"; imported when click asks for the command, so `memgpt --help` stays instant.
BUILTIN_COMMANDS = {
    "add": "memgpt_core.cli.list_cmd:add_group",
    "agents": "memgpt_core.cli.agents_cmd:agents",
    "archival": "memgpt_core.cli.archival_cmd:archival",
    "attach": "memgpt_core.cli.load_cmd:attach",
    "configure": "memgpt_core.cli.configure_cmd:configure",
    "doctor": "memgpt_core.cli.doctor_cmd:doctor",
    # `list` gathers agents, personas and humans (list_cmd) with the sources of load_cmd's group.
    "list": "memgpt_core.cli.list_cmd:list_group",
    "load": "memgpt_core.cli.load_cmd:load",
    "plugins": "memgpt_core.cli.plugins_cmd:plugins",
    "run": "memgpt_core.cli.run_cmd:run",
    "send": "memgpt_core.cli.send_cmd:send",
}


class MemGPTGroup(click.Group):
    """A click group whose built-in commands load lazily and whose errors are sentences, not tracebacks."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._plugin_commands: list[str] = []

    def _add_plugin_commands(self) -> None:
        """Add plugin commands from the current plugin host (again after ``plugins.reset()``, for tests)."""
        from memgpt_core import plugins

        for name in self._plugin_commands:
            self.commands.pop(name, None)
        self._plugin_commands = plugins.add_commands(self, reserved=BUILTIN_COMMANDS)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return sorted(set(BUILTIN_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in BUILTIN_COMMANDS and cmd_name not in self.commands:
            import importlib

            module, _, attr = BUILTIN_COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        if cmd_name not in self.commands:
            self._add_plugin_commands()
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MemGPTError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=MemGPTGroup)
@click.version_option(package_name="memgpt-core", prog_name="memgpt")
def cli() -> None:
    """MemGPT agents on local LLMs, through backend, wrapper and grammar plugins."""


def main() -> None:
    cli()
