"""``memgpt agents``: list and delete agents."""

from __future__ import annotations

import json

import click

AS_CONFIGURED = "as-configured"
"""Shown for an agent whose backend was not fixed by a flag: it runs on whatever the variables, the config file or the
embedded default choose at the time."""


@click.group()
def agents() -> None:
    """List and delete agents."""


@agents.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_agents(as_json: bool) -> None:
    """Every agent, with its message and archival counts."""
    from memgpt_core.storage import Store

    with Store() as store:
        rows = store.list_agents()
        if as_json:
            click.echo(
                json.dumps(
                    [
                        {
                            "name": a.name,
                            "created_at": a.created_at,
                            "messages": messages,
                            "archival": archival,
                            "wrapper": a.config.get("wrapper"),
                            "backend": a.config.get("backend") or AS_CONFIGURED,
                        }
                        for a, messages, archival in rows
                    ],
                    indent=2,
                )
            )
            return
        if not rows:
            click.echo(f"no agents yet in {store.path} (start one with `memgpt run`)")
            return
        header = ("NAME", "CREATED (UTC)", "MESSAGES", "ARCHIVAL", "BACKEND")
        table = [(a.name, a.created_at, str(m), str(n), a.config.get("backend") or AS_CONFIGURED) for a, m, n in rows]
        widths = [max(len(r[i]) for r in (header, *table)) for i in range(len(header))]
        for row in (header, *table):
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@agents.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete_agent(name: str, yes: bool) -> None:
    """Delete an agent with all its memory and messages."""
    from memgpt_core.errors import ConfigError
    from memgpt_core.storage import Store

    with Store() as store:
        record = store.get_agent(name)
        if record is None:
            raise ConfigError(f"there is no agent named {name!r}", fix="see `memgpt agents list`")
        lock = store.lock(record)  # refuses, with "agent in use", while a run or send has it open
        try:
            if not yes and not click.confirm(f"delete agent {record.name} and all its memory?", default=False):
                click.echo("kept")
                return
            store.delete_agent(record)
        finally:
            lock.release()
        click.echo(f"deleted agent {record.name}")
