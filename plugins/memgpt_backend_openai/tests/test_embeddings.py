"""Embeddings through ``POST /v1/embeddings``: the openai backend against real llama-servers (one started with
--embeddings, the shared one without), the vllm backend against the fake vLLM (an embedding model, and a generative
one as older and newer releases refuse it), and both chosen through the MEMGPT_EMBEDDING_* settings."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from fake_vllm import FakeVLLM
from memgpt_backend_openai import OpenAIBackend, VLLMBackend

from memgpt_core.embeddings import ENDPOINT_ENV, MODEL_ENV, TYPE_ENV, BackendEmbedder, make_embedder
from memgpt_core.errors import ConfigError

PASSAGES = ["Whisk two eggs with sugar and bake.", "def add(a, b):\n    return a + b", "Dear Sir, I complain."]
EMBED_MODEL = "BAAI/bge-small-en-v1.5"


@pytest.fixture(autouse=True)
def no_embedding_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("ENDPOINT_TYPE", "ENDPOINT", "MODEL", "DIM", "CHUNK_SIZE", "API_KEY"):
        monkeypatch.delenv(f"MEMGPT_EMBEDDING_{name}", raising=False)
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "home"))  # no config file of the developer's


@pytest.fixture
def embedding_server(llama_server_factory: Any) -> Any:
    """llama-server with SmolLM2, started for embeddings (mean pooling: SmolLM2 has no pooling of its own)."""
    return llama_server_factory(ctx_size=2048, parallel=1, extra_args=["--embeddings", "--pooling", "mean"])


def test_the_openai_backend_embeds_with_a_llama_server_started_for_it(embedding_server: Any) -> None:
    backend = OpenAIBackend(embedding_server.url + "/v1", timeout=120)
    vectors = backend.embed(PASSAGES)
    # The oracle: the same server asked directly, one passage at a time.
    for passage, vector in zip(PASSAGES, vectors, strict=True):
        answer = requests.post(
            embedding_server.url + "/v1/embeddings", json={"input": passage}, timeout=120, proxies={"http": ""}
        ).json()
        assert vector == pytest.approx(answer["data"][0]["embedding"], abs=1e-4)
    assert {len(vector) for vector in vectors} == {576}  # SmolLM2's hidden size
    assert vectors[0] != vectors[1]


def test_the_openai_backend_is_chosen_by_the_embedding_settings(monkeypatch, embedding_server: Any) -> None:
    monkeypatch.setenv(TYPE_ENV, "openai")
    monkeypatch.setenv(ENDPOINT_ENV, embedding_server.url)
    embedder, why = make_embedder()
    assert why is None and isinstance(embedder, BackendEmbedder)
    assert embedder.name == "openai:" + OpenAIBackend(embedding_server.url).served_model()
    code, letter = embedder.embed(["def sub(a, b):\n    return a - b", "Dear Madam, I complain about my bill."])
    stored = embedder.embed(PASSAGES)
    assert int((stored @ code).argmax()) == 1 and int((stored @ letter).argmax()) == 2


def test_a_llama_server_without_embeddings_is_named_with_the_flag(llama_server: Any) -> None:
    backend = OpenAIBackend(llama_server.url, timeout=60)  # the session's server has no --embeddings
    with pytest.raises(ConfigError, match="does not make embeddings") as caught:
        backend.embed(["hello"])
    assert "--embeddings --pooling mean" in caught.value.fix and "MEMGPT_EMBEDDING_ENDPOINT" in caught.value.fix


def test_vllm_with_an_embedding_model(httpserver) -> None:
    vllm = FakeVLLM(httpserver, models=[EMBED_MODEL], embedding_dim=8)
    backend = VLLMBackend(vllm.url)
    vectors = backend.embed(PASSAGES)
    assert vectors == [vllm.vector(passage) for passage in PASSAGES]
    (sent,) = vllm.sent("/v1/embeddings")
    assert sent == {"input": PASSAGES, "model": EMBED_MODEL, "encoding_format": "float"}


def test_the_embedding_model_named_by_the_user_is_sent(httpserver, monkeypatch) -> None:
    vllm = FakeVLLM(httpserver, models=[EMBED_MODEL, "intfloat/e5-small-v2"], embedding_dim=4)
    monkeypatch.setenv(TYPE_ENV, "vllm")
    monkeypatch.setenv(ENDPOINT_ENV, vllm.url)
    monkeypatch.setenv(MODEL_ENV, "intfloat/e5-small-v2")
    embedder, _ = make_embedder()
    assert embedder is not None and embedder.name == "vllm:intfloat/e5-small-v2"
    assert embedder.embed(["one", "two"]).shape == (2, 4)
    assert [body["model"] for body in vllm.sent("/v1/embeddings")] == ["intfloat/e5-small-v2"]
    monkeypatch.setenv(MODEL_ENV, "no/such-model")
    embedder, _ = make_embedder()
    with pytest.raises(ConfigError, match="no embedding model 'no/such-model'") as caught:
        embedder.embed(["one"])
    assert MODEL_ENV in caught.value.fix


@pytest.mark.parametrize("route", [True, False], ids=["older vLLM refuses", "newer vLLM has no route"])
def test_vllm_serving_a_generative_model_says_how_to_serve_an_embedding_model(httpserver, route: bool) -> None:
    vllm = FakeVLLM(httpserver, embeddings_route=route)
    with pytest.raises(ConfigError, match="cannot make embeddings") as caught:
        VLLMBackend(vllm.url).embed(["hello"])
    assert "--runner pooling" in caught.value.fix and "MEMGPT_EMBEDDING_ENDPOINT" in caught.value.fix
    if route:
        assert "does not support Embeddings API" in caught.value.message
    # The openai backend finds the vLLM dialect first and tells it the same way.
    with pytest.raises(ConfigError, match="cannot make embeddings"):
        OpenAIBackend(vllm.url).embed(["hello"])


def test_both_backends_declare_embeddings() -> None:
    assert OpenAIBackend.capabilities.embeddings and VLLMBackend.capabilities.embeddings
