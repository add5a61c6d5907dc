"""Where archival vectors come from when no MEMGPT_EMBEDDING_* variable is set: the config file's [embedding]
section, in MemGPT 0.3's keys (a MemGPT user's file works as it is), with the variables winning over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memgpt_core.embeddings import (
    DEFAULT_CHUNK_SIZE,
    KEY_ENV,
    MODEL_ENV,
    TYPE_ENV,
    BackendEmbedder,
    EmbeddingMismatchError,
    EmbeddingSettings,
    ShippedEmbedder,
    make_embedder,
)
from memgpt_core.errors import NotInstalledError

MEMGPT_LOCAL = """\
[defaults]
preset = memgpt_chat
persona = sam_pov
human = basic

[model]
model_endpoint = http://localhost:8080
model_endpoint_type = llamacpp
model_wrapper = chatml
context_window = 8192

[embedding]
embedding_endpoint_type = local
embedding_endpoint = None
embedding_model = BAAI/bge-small-en-v1.5
embedding_dim = 384
embedding_chunk_size = 300

[archival_storage]
type = chroma
path = /home/me/.memgpt/chroma

[version]
memgpt_version = 0.3.25
"""
"""What MemGPT 0.3's `memgpt configure` writes for its built-in HuggingFace embedding model."""


def write_config(home: Path, embedding: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config"
    path.write_text("[model]\nmodel_endpoint_type = llamacpp\n\n[embedding]\n" + embedding)
    return path


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEMGPT_CONFIG_PATH", raising=False)
    return tmp_path / "home"


def test_memgpts_local_model_means_the_shipped_one_and_its_size_is_not_imposed(home: Path) -> None:
    home.mkdir()
    (home / "config").write_text(MEMGPT_LOCAL)
    settings = EmbeddingSettings.from_env()
    assert (settings.endpoint_type, settings.model, settings.dim, settings.chunk_size) == ("local", None, None, 300)
    embedder, why = make_embedder(settings)
    assert why is None and isinstance(embedder, ShippedEmbedder)
    assert embedder.embed(["a note about the dog"]).shape == (1, ShippedEmbedder.DIM)  # not 384: no mismatch


def test_an_unset_type_in_the_file_is_the_shipped_model(home: Path) -> None:
    write_config(home, "embedding_chunk_size = 120\n")
    embedder, why = make_embedder()
    assert why is None and isinstance(embedder, ShippedEmbedder)
    assert EmbeddingSettings.from_env().chunk_size == 120


def test_a_server_named_in_the_file_is_used_with_its_model_and_the_key_variable(home: Path, monkeypatch) -> None:
    path = write_config(
        home,
        "embedding_endpoint_type = ollama\nembedding_endpoint = http://127.0.0.1:11999\n"
        "embedding_model = nomic-embed-text\nembedding_dim = 768\n",
    )
    monkeypatch.setenv(KEY_ENV, "sk-embed")  # the file has no key; the variable still applies
    settings = EmbeddingSettings.from_env()
    assert settings.origin == f"[embedding] embedding_endpoint_type in {path}, line 5"
    embedder, _ = make_embedder(settings)
    assert isinstance(embedder, BackendEmbedder) and embedder.name == "ollama:nomic-embed-text"
    assert embedder.backend.endpoint == "http://127.0.0.1:11999" and embedder.backend.api_key == "sk-embed"
    assert embedder.expected_dim == 768 and settings.chunk_size == DEFAULT_CHUNK_SIZE
    assert "sk-embed" not in repr(settings)


def test_variables_win_over_the_file_and_never_mix_with_it(home: Path, monkeypatch) -> None:
    write_config(home, "embedding_endpoint_type = ollama\nembedding_model = nomic-embed-text\n")
    monkeypatch.setenv(TYPE_ENV, "none")
    embedder, why = make_embedder()
    assert embedder is None and f"{TYPE_ENV}=none" in (why or "")
    monkeypatch.delenv(TYPE_ENV)
    monkeypatch.setenv(MODEL_ENV, "all-minilm")  # one variable set: the file's section is not read at all
    settings = EmbeddingSettings.from_env()
    assert (settings.endpoint_type, settings.model, settings.origin) == (None, "all-minilm", TYPE_ENV)


def test_none_in_the_file_turns_vector_search_off_and_says_where(home: Path) -> None:
    path = write_config(home, "embedding_endpoint_type = none\n")
    embedder, why = make_embedder()
    assert embedder is None and str(path) in (why or "") and "words only" in (why or "")


def test_memgpts_other_endpoint_types_are_refused_naming_the_file(home: Path) -> None:
    path = write_config(home, "embedding_endpoint_type = hugging-face\nembedding_endpoint = https://tei.example\n")
    with pytest.raises(NotInstalledError, match="hugging-face") as caught:
        make_embedder()
    assert f"{path}, line 5" in caught.value.message and "local" in (caught.value.fix or "")


def test_the_file_at_memgpt_config_path_is_read(home: Path, monkeypatch, tmp_path: Path) -> None:
    other = write_config(tmp_path / "elsewhere", "embedding_endpoint_type = none\n")
    monkeypatch.setenv("MEMGPT_CONFIG_PATH", str(other))
    assert EmbeddingSettings.from_env().endpoint_type == "none"


def test_the_files_size_is_checked_against_a_real_server(home: Path, llama_server_factory: Any) -> None:
    server = llama_server_factory(ctx_size=2048, parallel=1, extra_args=["--embeddings", "--pooling", "mean"])
    path = write_config(
        home, f"embedding_endpoint_type = llamacpp\nembedding_endpoint = {server.url}\nembedding_dim = 384\n"
    )
    embedder, _ = make_embedder()
    assert embedder is not None
    with pytest.raises(EmbeddingMismatchError, match=r"576 dimensions, but \[embedding\] embedding_dim in") as caught:
        embedder.embed(["hello"])
    assert str(path) in caught.value.message and "[embedding] embedding_dim to 576" in (caught.value.fix or "")
