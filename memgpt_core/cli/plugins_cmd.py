"""``memgpt plugins``: list what is installed (broken plugins included), and install or remove plugins with pip."""

from __future__ import annotations

import os
import sys

import click


@click.group()
def plugins() -> None:
    """List, install and uninstall memgpt plugins."""


@plugins.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One sorted JSON list of objects, for scripts.")
@click.option("--all", "include_builtins", is_flag=True, help="Include the plugins built into memgpt-core.")
@click.pass_context
def list_plugins(ctx: click.Context, as_json: bool, include_builtins: bool) -> None:
    """Show installed plugins: distribution, version, status, and what each registers."""
    from memgpt_core import plugins as host

    root = ctx.find_root().command
    if isinstance(root, click.Group):  # build the full command line, so plugin commands are listed too
        root.list_commands(ctx)
    found = host.get_plugins(include_builtins=include_builtins)
    if as_json:
        import json

        click.echo(json.dumps([p.as_json() for p in found], indent=2))
        return
    selection = host.selection()
    if selection is not None:  # say so when MEMGPT_LOAD_PLUGINS hides plugins, or names one that is not there
        left_out, not_found = selection
        if left_out:
            click.echo(f"MEMGPT_LOAD_PLUGINS leaves out: {', '.join(left_out)}", err=True)
        if not_found:
            click.echo(f"MEMGPT_LOAD_PLUGINS names plugins that are not installed: {', '.join(not_found)}", err=True)
    if not found:
        if selection is not None and selection[0]:
            click.echo("No plugins loaded (see MEMGPT_LOAD_PLUGINS above).")
        else:
            from memgpt_core import distributions

            backends = sorted(set(distributions.PROVIDERS["backends"].values()))
            click.echo("No plugins installed. Install the backend for your server; it brings the wrappers it needs:")
            click.echo(f"  {distributions.install_command('memgpt-backend-NAME')}")
            click.echo(f"  (memgpt-backend-NAME: {', '.join(backends)})")
        return
    rows = [("distribution", "version", "status", "registers")]
    for p in found:
        parts = []
        for label, names in (
            ("backends", p.backends),
            ("wrappers", p.wrappers),
            ("grammars", p.grammars),
            ("commands", p.commands),
        ):
            if names:
                parts.append(f"{label}: {', '.join(sorted(names))}")
        registers = "; ".join(parts) if not p.error else p.error
        rows.append((p.name, p.version or "built-in", p.status, registers or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])


@plugins.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages if they are installed.")
@click.option("-e", "--editable", is_flag=True, help="Install a local folder in editable mode.")
@click.option(
    "-f",
    "--find-links",
    "find_links",
    multiple=True,
    metavar="DIR",
    help="Also look for packages in DIR, a folder of wheels (from a checkout: `make dist` builds them in dist/).",
)
def install(names: tuple[str, ...], upgrade: bool, editable: bool, find_links: tuple[str, ...]) -> None:
    """Install plugins with pip, into the Python environment memgpt runs in."""
    _require_pip()
    args = [sys.executable, "-m", "pip", "install"]
    if upgrade:
        args.append("--upgrade")
    for place in find_links:
        if "://" not in place and not os.path.isdir(place):
            raise click.ClickException(
                f"--find-links {place}: there is no folder {os.path.abspath(place)}\n"
                "  fix: run `make dist` in your checkout of memgpt (it builds the wheels in dist/), then run this "
                "command from there, or pass the folder's full path"
            )
        args.extend(["--find-links", place])
    for name in names:
        args.extend(["-e", name] if editable else [name])
    raise SystemExit(_pip(args))


@plugins.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def uninstall(names: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugins with pip, from the Python environment memgpt runs in."""
    _require_pip()
    args = [sys.executable, "-m", "pip", "uninstall", *names]
    if yes:
        args.append("-y")
    raise SystemExit(_pip(args))


def _pip(args: list[str]) -> int:
    import subprocess

    return subprocess.call(args)


def _require_pip() -> None:
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        raise click.ClickException(
            f"pip is not installed in the Python environment memgpt runs in ({sys.prefix}).\n"
            f"  fix: run {sys.executable} -m ensurepip, or install plugins with the tool that made this environment"
        )
