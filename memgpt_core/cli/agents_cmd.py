"""``memgpt agents``: List and delete agents."""

from __future__ import annotations

import click


@click.group()
def agents() -> None:
    """List and delete agents."""
    raise click.ClickException("memgpt agents is not implemented yet")
