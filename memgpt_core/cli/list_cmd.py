"""``memgpt list agents|personas|humans|sources`` and ``memgpt add persona|human``, as MemGPT users know them."""

from __future__ import annotations

import json
import sys

import click

from memgpt_core.cli.agents_cmd import list_agents

PREVIEW = 70
"""Characters of a persona's text shown in the table."""


@click.group("list")
def list_group() -> None:
    """List agents, personas, humans and data sources (MemGPT's `memgpt list`)."""


list_group.add_command(list_agents, "agents")


def _list_blocks(kind: str, as_json: bool) -> None:
    from memgpt_core.personas import folder, list_blocks

    blocks = list_blocks(kind)
    if as_json:
        rows = [{"name": b.name, "origin": b.origin, "path": b.path, "text": b.text} for b in blocks]
        click.echo(json.dumps(rows, indent=2))
        return
    header = ("NAME", "ORIGIN", "TEXT")
    table = [(b.name, b.origin, _preview(b.text)) for b in blocks]
    widths = [max(len(row[i]) for row in (header, *table)) for i in range(2)]
    for row in (header, *table):
        click.echo(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}".rstrip())
    click.echo(
        click.style(
            f"saved ones live in {folder(kind)}; add one with `memgpt add {kind} --name NAME -f FILE`", dim=True
        ),
        err=True,
    )


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"


@list_group.command("personas")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with each full text) instead of a table.")
def list_personas(as_json: bool) -> None:
    """Every persona --persona NAME can use: saved ones and the shipped ones."""
    _list_blocks("persona", as_json)


@list_group.command("humans")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with each full text) instead of a table.")
def list_humans(as_json: bool) -> None:
    """Every human --human NAME can use: saved ones and the shipped ones."""
    _list_blocks("human", as_json)


def _add_other_list_commands() -> None:
    """The `list` subcommands other modules define (`list sources`, with `memgpt load`), under this one group."""
    from memgpt_core.cli import load_cmd

    for name, command in load_cmd.list_group.commands.items():
        if name not in list_group.commands:
            list_group.add_command(command, name)


_add_other_list_commands()


@click.group("add")
def add_group() -> None:
    """Save a persona or a human under a name, for --persona NAME / --human NAME (MemGPT's `memgpt add`)."""


def _add_command(kind: str) -> click.Command:
    @click.command(kind, help=f"Save a {kind} text under a name (then: memgpt run --{kind} NAME).")
    @click.option("--name", required=True, help=f"The {kind}'s name.")
    @click.option("--text", help=f"The {kind} text itself.")
    @click.option("-f", "--file", "filename", type=click.Path(dir_okay=False), help="Read the text from a file.")
    @click.option("--yes", "-y", is_flag=True, help="Replace a saved one of that name without asking.")
    def add(name: str, text: str | None, filename: str | None, yes: bool) -> None:
        from memgpt_core.errors import ConfigError
        from memgpt_core.personas import folder, save_block

        if (text is None) == (filename is None):
            raise click.UsageError(f"give the {kind} text with either --text TEXT or -f FILE (one of the two)")
        if filename is not None:
            try:
                with open(filename, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"cannot read {filename}: {getattr(exc, 'strerror', None) or exc}",
                    fix="give a readable UTF-8 text file",
                ) from None
        assert text is not None
        replace = yes
        if not yes and (folder(kind) / f"{name}.txt").exists():
            if not sys.stdin.isatty():
                raise ConfigError(f"a {kind} named {name!r} already exists", fix="add --yes to replace it")
            replace = click.confirm(f"{kind} {name} already exists. Replace it?", default=False)
            if not replace:
                click.echo("kept")
                return
        path = save_block(kind, name, text, replace=replace)
        click.echo(f"saved {kind} {name} ({path})")

    return add


add_group.add_command(_add_command("persona"))
add_group.add_command(_add_command("human"))
