"""``memgpt run``: chat with a MemGPT agent."""

from __future__ import annotations

import click


@click.command()
def run() -> None:
    """Chat with a MemGPT agent (starts an embedded llama.cpp server when no backend is configured)."""
    raise click.ClickException("memgpt run is not implemented yet: the agent arrives with the agent issue")
