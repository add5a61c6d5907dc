"""``memgpt send``: Send one message to an agent and print its replies."""

from __future__ import annotations

import click


@click.command()
def send() -> None:
    """Send one message to an agent and print its replies."""
    raise click.ClickException("memgpt send is not implemented yet")
