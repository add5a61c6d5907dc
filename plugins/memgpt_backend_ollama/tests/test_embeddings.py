"""Embeddings through Ollama's ``POST /api/embed``, against the fake (fake_ollama.py): the request, the model it
names, the vectors in order, and the errors for a chat model, an unknown model and no model at all."""

from __future__ import annotations

from typing import Any

import pytest
from fake_ollama import FakeModel, FakeOllama
from memgpt_backend_ollama import MODEL_ENV, OllamaBackend

from memgpt_core.embeddings import ENDPOINT_ENV, TYPE_ENV, BackendEmbedder, make_embedder
from memgpt_core.embeddings import MODEL_ENV as EMBEDDING_MODEL_ENV
from memgpt_core.errors import ConfigError

PASSAGES = ["Whisk two eggs with sugar and bake.", "def add(a, b): return a + b", "Dear Sir, I complain."]


@pytest.fixture(autouse=True)
def no_embedding_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("ENDPOINT_TYPE", "ENDPOINT", "MODEL", "DIM", "CHUNK_SIZE", "API_KEY"):
        monkeypatch.delenv(f"MEMGPT_EMBEDDING_{name}", raising=False)
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "home"))


@pytest.fixture
def nomic(ollama: FakeOllama) -> FakeModel:
    return ollama.add(FakeModel("nomic-embed-text:latest", architecture="nomic-bert", capabilities=("embedding",)))


def test_embed_sends_the_named_model_and_reads_the_vectors_in_order(ollama: FakeOllama, nomic: FakeModel) -> None:
    backend = OllamaBackend(ollama.url, model="llama3.2")
    vectors = backend.embed(PASSAGES, model="nomic-embed-text")
    assert vectors == [ollama.vector(nomic, passage) for passage in PASSAGES]
    assert ollama.sent("/api/embed") == [{"model": "nomic-embed-text", "input": PASSAGES}]


def test_without_a_model_argument_the_backends_model_is_used(ollama: FakeOllama, nomic: FakeModel) -> None:
    assert len(OllamaBackend(ollama.url, model="nomic-embed-text").embed(["one"])[0]) == nomic.embedding_dim
    assert ollama.sent("/api/embed")[0]["model"] == "nomic-embed-text"


def test_chosen_by_the_embedding_settings(monkeypatch, ollama: FakeOllama, nomic: FakeModel) -> None:
    monkeypatch.setenv(MODEL_ENV, "llama3.2")  # the chat model, for completions
    monkeypatch.setenv(TYPE_ENV, "ollama")
    monkeypatch.setenv(ENDPOINT_ENV, ollama.url)
    monkeypatch.setenv(EMBEDDING_MODEL_ENV, "nomic-embed-text")
    embedder, why = make_embedder()
    assert why is None and isinstance(embedder, BackendEmbedder)
    assert embedder.name == "ollama:nomic-embed-text"
    assert embedder.embed(PASSAGES).shape == (3, nomic.embedding_dim)
    assert {body["model"] for body in ollama.sent("/api/embed")} == {"nomic-embed-text"}


def test_a_chat_model_is_refused_with_the_embedding_model_to_pull(ollama: FakeOllama) -> None:
    with pytest.raises(ConfigError, match=r"'llama3\.2' does not make embeddings") as caught:
        OllamaBackend(ollama.url, model="llama3.2").embed(["hello"])
    assert "ollama pull nomic-embed-text" in caught.value.fix and EMBEDDING_MODEL_ENV in caught.value.fix
    assert "does not support embeddings" in caught.value.message  # Ollama's own words are kept


def test_an_unknown_model_lists_what_the_server_has(ollama: FakeOllama) -> None:
    with pytest.raises(ConfigError, match="no model named 'mxbai-embed-large'") as caught:
        OllamaBackend(ollama.url).embed(["hello"], model="mxbai-embed-large")
    assert "llama3.2:latest" in caught.value.message and "ollama pull mxbai-embed-large" in caught.value.fix


def test_no_model_at_all_asks_for_the_embedding_model(ollama: FakeOllama) -> None:
    with pytest.raises(ConfigError, match="must be named") as caught:
        OllamaBackend(ollama.url).embed(["hello"])
    assert EMBEDDING_MODEL_ENV in caught.value.fix and "smollm2:135m" in caught.value.message
    assert ollama.sent("/api/embed") == []


def test_declares_embeddings() -> None:
    assert OllamaBackend.capabilities.embeddings
