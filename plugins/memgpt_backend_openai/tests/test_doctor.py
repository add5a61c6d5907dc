"""`memgpt doctor` against the openai backend on the real llama-server, and against the vllm backend on the fake
vLLM: every check passes, and the context line says where the token counts come from."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from fake_vllm import FakeVLLM

from memgpt_core.cli import cli

CLEAN_ENV = {"BACKEND_TYPE": None, "OPENAI_API_BASE": None, "MEMGPT_API_KEY": None, "MEMGPT_MODEL_NAME": None}


def doctor(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args], env=CLEAN_ENV)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, json.loads(result.output)


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def test_doctor_on_the_openai_backend_and_llama_server(llama_server: Any) -> None:
    code, report = doctor(
        "--backend", "openai", "--endpoint", llama_server.url + "/v1", "--model", "chatml-grammar",
        "--samples", "2", "--max-tokens", "96",
    )  # fmt: skip
    found = checks(report)
    assert code == 0, report
    assert report["backend"] == "openai" and [c["status"] for c in report["checks"]] == ["ok"] * 5
    assert found["context"]["data"]["server"] == llama_server.n_ctx and found["context"]["data"]["exact_tokens"]
    assert "token counts exact" in found["context"]["detail"]
    assert "gbnf" in found["grammar"]["detail"]


def test_doctor_on_the_vllm_backend(vllm: FakeVLLM) -> None:
    vllm.max_model_len = 16384
    code, report = doctor("--backend", "vllm", "--endpoint", vllm.url, "--samples", "2", "--max-tokens", "96")
    found = checks(report)
    assert code == 0, report
    assert [c["status"] for c in report["checks"]] == ["ok"] * 5
    assert found["reachable"]["data"]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert found["context"]["data"]["server"] == 16384 and "token counts exact" in found["context"]["detail"]
    assert "json_schema" in found["grammar"]["detail"]
    assert report["wrapper"] == "airoboros-l2-70b-2.1-grammar", "vLLM takes a JSON schema: the -grammar default"
    assert any("structured_outputs" in body for body in vllm.sent("/v1/completions")), "the schema went unsent"


def test_doctor_says_when_token_counts_are_estimated(httpserver: Any) -> None:
    # A server of no known dialect (an OpenAI-compatible gateway that lists one model and completes).
    httpserver.expect_request("/v1/models").respond_with_json(
        {"object": "list", "data": [{"id": "m", "object": "model"}]}
    )
    httpserver.expect_request("/v1/completions").respond_with_json(
        {
            "choices": [{"index": 0, "text": " hello there", "finish_reason": "length"}],
            "usage": {"completion_tokens": 2},
        }
    )
    httpserver.expect_request("/props").respond_with_json({"detail": "Not Found"}, status=404)
    _, report = doctor("--backend", "openai", "--endpoint", httpserver.url_for("/"), "--context-window", "4096")
    found = checks(report)
    assert found["context"]["data"]["exact_tokens"] is False
    assert "token counts estimated (1 per 3 bytes" in found["context"]["detail"]
    assert found["grammar"]["status"] == "skip"
