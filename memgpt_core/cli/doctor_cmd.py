"""``memgpt doctor``: Check a backend and wrapper before chatting: reachability, context, grammar, speed, parse rate."""

from __future__ import annotations

import click


@click.command()
def doctor() -> None:
    """Check a backend and wrapper before chatting: reachability, context, grammar, speed, parse rate."""
    raise click.ClickException("memgpt doctor is not implemented yet")
