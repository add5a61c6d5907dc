"""``memgpt load``, ``memgpt list sources`` and ``memgpt attach``: documents into data sources, sources into agents.

The spellings are MemGPT's: ``memgpt load directory --name SOURCE --input-dir DIR [--recursive] [--extensions ...]``,
``memgpt attach --agent NAME --data-source SOURCE``. Progress and problems go to stderr; the summary to stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _extensions(raw: str) -> tuple[str, ...]:
    found = tuple(
        ("." + e.strip().lstrip(".")).lower() for e in raw.replace(" ", ",").split(",") if e.strip().lstrip(".")
    )
    if not found:
        raise click.BadParameter("name at least one extension, like .txt,.md", param_hint="--extensions")
    return found


def _directory_files(folder: Path, recursive: bool, extensions: tuple[str, ...]) -> list[Path]:
    from memgpt_core.errors import ConfigError

    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise ConfigError(f"--input-dir {folder} {what}", fix="pass the folder that holds the documents")
    pattern = "**/*" if recursive else "*"
    # Symbolic links are followed like any file; hidden files and folders (".git") are left out.
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.suffix.lower() in extensions
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and (p.is_file() or not p.exists())  # a dangling link is kept, so that it is reported as unreadable
    )


def _run_load(name: str, files: list[Path]) -> None:
    from memgpt_core.embeddings import EmbeddingSettings, make_embedder
    from memgpt_core.storage import Store
    from memgpt_core.storage.sources import check_source_name, load_documents

    check_source_name(name)
    settings = EmbeddingSettings.from_env()
    embedder, why = make_embedder(settings)  # settings that cannot work stop the load here, before anything is read
    if why:
        click.echo(f"note: {why}", err=True)
    if not files:
        click.echo(f"no files to load into {name}", err=True)
        return
    with (
        Store(embedder=embedder) as store,
        click.progressbar(
            length=len(files),
            label=f"loading {len(files)} file{'s' if len(files) != 1 else ''} into {name}",
            file=sys.stderr,
            item_show_func=lambda p: p.name if p else None,
        ) as bar,
    ):

        def advance(path: Path) -> None:
            bar.update(1, path)

        report = load_documents(store, name, files, embedder=embedder, chunk_size=settings.chunk_size, on_file=advance)
    for line in report.skipped:
        click.echo(click.style(f"skipped {line}", fg="red"), err=True)
    for path, original in report.duplicates:
        click.echo(f"skipped {path}: the same bytes are already loaded as {original}", err=True)
    passages = sum(n for _, n in report.loaded)
    parts = [f"loaded {len(report.loaded)} file{'s' if len(report.loaded) != 1 else ''} ({passages} passages)"]
    if report.unchanged:
        parts.append(f"{len(report.unchanged)} unchanged")
    if report.skipped:
        parts.append(f"{len(report.skipped)} unreadable")
    embedded = f", embedded by {embedder.name}" if embedder is not None and passages else ""
    click.echo(f"{', '.join(parts)} into data source {name}{embedded}")


@click.group()
def load() -> None:
    """Load documents into a data source (then attach it to an agent with `memgpt attach`)."""


_EXTENSIONS_HELP = "Comma-separated file extensions to read (default: .txt,.md,.markdown,.text,.rst,.pdf)."


@load.command("directory")
@click.option("--name", required=True, help="The data source to load into (created if new).")
@click.option("--input-dir", required=True, type=click.Path(path_type=Path), help="The folder to read.")
@click.option("--recursive", is_flag=True, help="Read sub-folders too.")
@click.option("--extensions", default=None, help=_EXTENSIONS_HELP)
def load_directory(name: str, input_dir: Path, recursive: bool, extensions: str | None) -> None:
    """Load every text, Markdown and PDF file of a folder. Unchanged files are not loaded again."""
    from memgpt_core.storage.documents import DEFAULT_EXTENSIONS

    wanted = _extensions(extensions) if extensions is not None else DEFAULT_EXTENSIONS
    _run_load(name, _directory_files(input_dir.expanduser(), recursive, wanted))


@load.command("file")
@click.option("--name", required=True, help="The data source to load into (created if new).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def load_file(name: str, paths: tuple[Path, ...]) -> None:
    """Load one or more files. An unchanged file is not loaded again."""
    _run_load(name, [p.expanduser() for p in paths])


@click.group("list")
def list_group() -> None:
    """List data sources (MemGPT's `memgpt list`)."""


@list_group.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_sources(as_json: bool) -> None:
    """Every data source: its files, passages, embedders, and the agents it is attached to."""
    from memgpt_core.storage import Store
    from memgpt_core.storage.sources import Sources

    with Store() as store:
        infos = Sources(store).list()
        if as_json:
            rows = [
                {
                    "name": s.name,
                    "created_at": s.created_at,
                    "files": s.files,
                    "passages": s.passages,
                    "embedders": {k or "none": v for k, v in s.embedders.items()},
                    "agents": s.agents,
                }
                for s in infos
            ]
            click.echo(json.dumps(rows, indent=2))
            return
        if not infos:
            click.echo("no data sources yet (make one with `memgpt load directory --name NAME --input-dir DIR`)")
            return
        header = ("NAME", "FILES", "PASSAGES", "EMBEDDED BY", "ATTACHED TO")
        table = [
            (
                s.name,
                str(s.files),
                str(s.passages),
                ", ".join(f"{k or 'none'} ({v})" for k, v in sorted(s.embedders.items(), key=lambda kv: str(kv[0])))
                or "-",
                ", ".join(s.agents) or "-",
            )
            for s in infos
        ]
        widths = [max(len(r[i]) for r in (header, *table)) for i in range(len(header))]
        for row in (header, *table):
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@click.command()
@click.option("--agent", required=True, help="The agent whose archival memory receives the passages.")
@click.option("--data-source", required=True, help="The data source to copy (see `memgpt list sources`).")
def attach(agent: str, data_source: str) -> None:
    """Copy a data source's passages into an agent's archival memory (again later: only what was loaded since)."""
    from memgpt_core.errors import ConfigError
    from memgpt_core.storage import Store
    from memgpt_core.storage.sources import Sources

    with Store() as store:
        record = store.get_agent(agent)
        if record is None:
            raise ConfigError(f"there is no agent named {agent!r}", fix="see `memgpt agents list`")
        sources = Sources(store)
        sources.require(data_source)  # an unknown source is refused before the agent is locked
        lock = store.lock(record)  # refuses while a run or send has the agent open
        try:
            copied = sources.attach(record, data_source)
        finally:
            lock.release()
        total = store.count_archival(record.id)
    if copied:
        click.echo(
            f"attached data source {data_source} to agent {record.name}: {copied} passages copied "
            f"({total} in its archival memory)"
        )
    else:
        click.echo(f"agent {record.name} already has every passage of data source {data_source}")
