"""``memgpt archival``: the state of an agent's archival vectors, and making them again after the embedder changed."""

from __future__ import annotations

import sys

import click

REEMBED_BATCH = 256
"""Passages embedded and committed together: a killed re-embed keeps every finished batch."""


def _open_agent(store, name):  # type: ignore[no-untyped-def]
    from memgpt_core.errors import ConfigError

    record = store.get_agent(name)
    if record is None:
        raise ConfigError(f"there is no agent named {name!r}", fix="see `memgpt agents list`")
    return record


@click.group()
def archival() -> None:
    """An agent's archival memory: which embedder made its vectors, and re-embedding."""


@archival.command("status")
@click.option("--agent", required=True, help="The agent to look at.")
def status(agent: str) -> None:
    """How many passages have vectors from which embedder, against the embedder configured now."""
    from memgpt_core.embeddings import make_embedder
    from memgpt_core.storage import Store

    embedder, why = make_embedder()
    with Store(embedder=embedder) as store:
        record = _open_agent(store, agent)
        counts = store.archival_vector_counts(record.id)
    current = embedder.name if embedder is not None else None
    click.echo(f"agent {record.name}: {sum(counts.values())} archival passages")
    for name, count in sorted(counts.items(), key=lambda kv: (kv[0] != current, str(kv[0]))):
        label = name or "no vector"
        mark = " (current embedder)" if name is not None and name == current else ""
        click.echo(f"  {count:>7}  {label}{mark}")
    if current is None:
        click.echo(f"no embedder now: {why}")
    elif any(name != current for name in counts):
        click.echo(f"run `memgpt archival reembed --agent {record.name}` to give them all vectors from {current}")


@archival.command("reembed")
@click.option("--agent", required=True, help="The agent whose archival passages get new vectors.")
@click.option("--all", "everything", is_flag=True, help="Embed every passage again.")
def reembed(agent: str, everything: bool) -> None:
    """Make archival vectors with the embedder configured now (after changing it, or when some are missing)."""
    from memgpt_core.embeddings import make_embedder
    from memgpt_core.errors import ConfigError
    from memgpt_core.storage import Store

    embedder, why = make_embedder()
    if embedder is None:
        raise ConfigError(f"there is no embedder to make vectors with: {why}", fix="see docs/archival.md")
    with Store(embedder=embedder) as store:
        record = _open_agent(store, agent)
        lock = store.lock(record)  # the agent's own process would otherwise race with us
        try:
            name = embedder.name
            query = (
                "SELECT a.id, a.content FROM archival a LEFT JOIN archival_vectors v ON v.id = a.id "
                "WHERE a.agent_id = ?" + ("" if everything else " AND (v.id IS NULL OR v.embedder != ?)")
            )
            rows = store.conn.execute(query, (record.id,) if everything else (record.id, name)).fetchall()
            if not rows:
                click.echo(f"every archival passage of agent {record.name} already has a vector from {name}")
                return
            with click.progressbar(length=len(rows), label=f"embedding with {name}", file=sys.stderr) as bar:
                for start in range(0, len(rows), REEMBED_BATCH):
                    batch = rows[start : start + REEMBED_BATCH]
                    vectors = embedder.embed([text for _, text in batch])
                    store.set_archival_vectors(record.id, name, [i for i, _ in batch], vectors)
                    bar.update(len(batch))
        finally:
            lock.release()
    click.echo(f"embedded {len(rows)} archival passages of agent {record.name} with {name}")
