"""Archival vectors from a real llama-server started with --embeddings: semantic search, the errors of a server
that was not started for it, and moving an agent from the shipped model to the server (re-embed)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from memgpt_core.cli import cli
from memgpt_core.embeddings import ENDPOINT_ENV, TYPE_ENV, BackendEmbedder, make_embedder
from memgpt_core.errors import ConfigError
from memgpt_core.storage import Store

# SmolLM2-135M is a chat model, not an embedding model: mean-pooled, it tells topics apart only when they differ a
# lot, so these notes do. No question shares a word with its note.
NOTES = [
    "def add(a, b):\n    return a + b",
    "Whisk two eggs with sugar, fold in the flour and bake for twenty minutes.",
    "The striker scored twice in the second half and the home side won the cup.",
    "Dear Sir, I am writing to complain about my electricity bill.",
]
QUESTIONS = {"python function source code": NOTES[0], "a letter of complaint": NOTES[3]}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("ENDPOINT_TYPE", "ENDPOINT", "MODEL", "DIM", "CHUNK_SIZE", "API_KEY"):
        monkeypatch.delenv(f"MEMGPT_EMBEDDING_{name}", raising=False)
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "home"))


@pytest.fixture
def embedding_server(llama_server_factory):
    """An extra llama-server with SmolLM2 that makes embeddings (mean pooling: SmolLM2 has no pooling of its own)."""
    return llama_server_factory(ctx_size=2048, parallel=1, extra_args=["--embeddings", "--pooling", "mean"])


def test_semantic_search_with_vectors_from_the_users_llama_server(monkeypatch, embedding_server):
    monkeypatch.setenv(TYPE_ENV, "llamacpp")
    monkeypatch.setenv(ENDPOINT_ENV, embedding_server.url)
    embedder, why = make_embedder()
    assert why is None and isinstance(embedder, BackendEmbedder)
    assert embedder.name == "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    with Store() as store:
        agent = store.create_agent("ann", persona="p", human="h")
        for note in NOTES:
            store.archival_insert(agent.id, note)
        rows = store.conn.execute("SELECT DISTINCT embedder, dim FROM archival_vectors").fetchall()
        assert rows == [("llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf", 576)]  # SmolLM2's hidden size
        for question, note in QUESTIONS.items():
            assert store.archival_search(agent.id, question).items[0][1] == note, question
        assert store.hybrid is not None and store.hybrid.notes == []


def test_a_server_started_without_embeddings_is_named_with_the_flag_to_add(monkeypatch, llama_server, caplog):
    monkeypatch.setenv(TYPE_ENV, "llamacpp")
    monkeypatch.setenv(ENDPOINT_ENV, llama_server.url)  # the session's server has no --embeddings
    embedder, _ = make_embedder()
    with pytest.raises(ConfigError, match="started without --embeddings") as caught:
        embedder.embed(["hello"])
    assert "--embeddings --pooling mean" in caught.value.fix
    # The agent's memory still works, by words, and says why once.
    with Store() as store:
        agent = store.create_agent("ann", persona="p", human="h")
        store.archival_insert(agent.id, NOTES[3])
        store.archival_insert(agent.id, NOTES[2])
        assert store.archival_search(agent.id, "electricity").items[0][1] == NOTES[3]
    said = [r.getMessage() for r in caplog.records if "--embeddings" in r.getMessage()]
    assert len(said) == 1 and "saved without vectors" in said[0]
    # `memgpt load` asked to embed with it stops before reading anything, with the same fix.
    result = CliRunner().invoke(cli, ["load", "file", "--name", "docs", __file__])
    assert result.exit_code == 1 and "--embeddings --pooling mean" in result.output
    with Store() as store:
        assert store.conn.execute("SELECT count(*) FROM source_files").fetchone()[0] == 0


def test_moving_an_agent_from_the_shipped_model_to_the_server(monkeypatch, embedding_server, tmp_path, caplog):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, note in enumerate(NOTES):
        (docs / f"note{i}.txt").write_text(note + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["load", "directory", "--name", "notes", "--input-dir", str(docs)]).exit_code == 0
    with Store() as store:
        store.create_agent("ann", persona="p", human="h")
    assert runner.invoke(cli, ["attach", "--agent", "ann", "--data-source", "notes"]).exit_code == 0

    monkeypatch.setenv(TYPE_ENV, "llamacpp")
    monkeypatch.setenv(ENDPOINT_ENV, embedding_server.url)
    server_name = "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    with Store() as store:
        agent = store.get_agent("ann")
        # Vectors from the shipped model (256 numbers) are never compared with the server's (576): words only for
        # now, said once, naming the command; every passage is still there.
        assert store.archival_search(agent.id, "electricity bill").items[0][1] == NOTES[3]
        assert store.archival_search(agent.id, "python function source code").total == 0
        assert store.hybrid is not None
        [note] = store.hybrid.notes
        assert f"4 of agent ann's 4 archival passages have no vector from the current embedder {server_name}" in note
        assert "4 embedded by wordllama:l2_supercat_256" in note and "memgpt archival reembed --agent ann" in note

    result = runner.invoke(cli, ["archival", "reembed", "--agent", "ann"])
    assert result.exit_code == 0, result.output
    assert f"embedded 4 archival passages of agent ann with {server_name}" in result.output
    with Store() as store:
        agent = store.get_agent("ann")
        assert store.archival_vector_counts(agent.id) == {server_name: 4}
        # The loader joins a paragraph's lines into one, so the note reads "def add(a, b): return a + b" now.
        assert store.archival_search(agent.id, "python function source code").items[0][1] == " ".join(NOTES[0].split())
