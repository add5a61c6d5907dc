"""``memgpt doctor``: against the real llama-server (healthy, grammar on, the speed probe), a real closed port, and
webui fakes that answer as text-generation-webui does when no model is loaded, when its loader ignores the grammar, or
when the model ends every answer at once. Doctor on the real KoboldCpp is tested with that backend
(plugins/memgpt_backend_koboldcpp/tests/test_cli.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer

from memgpt_core.cli import cli
from memgpt_core.cli.doctor_cmd import (
    FAIL,
    OK,
    SPEED_PROMPTS,
    SPEED_TOKENS,
    WARN,
    _check_context,
    _check_reachable,
    _check_speed,
)
from memgpt_core.testing import closed_port

CLEAN_ENV = {"BACKEND_TYPE": None, "OPENAI_API_BASE": None, "MEMGPT_API_KEY": None, "MEMGPT_MODEL_PATH": None}


def doctor(*args: str) -> Result:
    return CliRunner().invoke(cli, ["doctor", *args], env=CLEAN_ENV, catch_exceptions=False)


def checks(result: Result) -> dict[str, dict[str, Any]]:
    report = json.loads(result.output)
    return {check["name"]: check for check in report["checks"]}


# -- the real llama-server --------------------------------------------------------------------------------------------


def test_healthy_llama_server_with_grammar(llama_server: Any) -> None:
    result = doctor(
        "--backend", "llamacpp", "--endpoint", llama_server.url, "--model", "chatml-grammar",
        "--samples", "1", "--max-tokens", "96", "--json",
    )  # fmt: skip
    found = checks(result)
    assert found["reachable"]["status"] == OK
    assert found["context"]["status"] == OK and found["context"]["data"]["server"] == llama_server.n_ctx
    assert found["grammar"]["status"] == OK, found["grammar"]
    assert found["speed"]["data"]["tokens_per_second"] > 0
    parse = found["parse rate"]
    assert parse["data"]["wrapper"]["grammar"] == "gbnf", "the -grammar wrapper must run with the grammar on"
    assert parse["data"]["wrapper"]["readable"] == 1, parse
    rivals = parse["data"]["rivals"]
    assert rivals["chatml"]["wrapper"] == "chatml", "the twin without grammar is compared"
    assert rivals["auto-grammar"]["grammar"] == "gbnf", "the model's own template is measured beside it"
    assert json.loads(result.output)["wrapper"] == "chatml-grammar"


def test_configured_context_larger_than_the_server_fails_with_the_fix(llama_server: Any) -> None:
    from memgpt_core import plugins

    backend = plugins.get_backend("llamacpp")(llama_server.url)
    check = _check_context(backend, llama_server.n_ctx * 4)
    assert check.status == FAIL
    assert f"--context-window {llama_server.n_ctx}" in (check.fix or "")
    assert _check_context(backend, 256).status == OK


ENDS_AT_ONCE = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
"""A finished ChatML exchange: SmolLM2, sampled greedily, answers it with its end-of-text token and nothing else."""


def test_the_speed_probe_bans_end_of_text_on_llama_server(llama_server: Any) -> None:
    from memgpt_core import plugins
    from memgpt_core.errors import EmptyCompletionError
    from memgpt_core.models import CompletionRequest

    backend = plugins.get_backend("llamacpp")(llama_server.url)
    greedy = {"temperature": 0, "seed": 1}
    with pytest.raises(EmptyCompletionError):  # the model, left alone, ends this prompt at once
        backend.complete(CompletionRequest(prompt=ENDS_AT_ONCE, max_tokens=12, sampling=greedy))
    banned = backend.complete(CompletionRequest(prompt=ENDS_AT_ONCE, max_tokens=12, sampling=greedy, ban_eos=True))
    assert banned.text and banned.finish_reason == "length" and banned.timings.predicted_n == 12

    check = _check_speed(backend)
    assert check.status in (OK, WARN) and check.data["tokens_per_second"] > 0
    assert f"server timings, {SPEED_TOKENS} tokens" in check.detail, "the probe generated up to its cap"


# -- a real closed port -----------------------------------------------------------------------------------------------


def test_closed_port_fails_reachability_and_stops() -> None:
    port = closed_port()
    secret = "sk-doctor-secret-0001"
    result = doctor("--backend", "llamacpp", "--endpoint", f"http://127.0.0.1:{port}", "--api-key", secret)
    assert result.exit_code == 1
    assert "FAIL  reachable" in result.output and f"127.0.0.1:{port}" in result.output
    assert "fix:" in result.output
    assert "grammar" not in result.output, "nothing else is checked when the server cannot be reached"
    assert secret not in result.output


def test_closed_port_json_report() -> None:
    result = doctor("--backend", "koboldcpp", "--endpoint", f"127.0.0.1:{closed_port()}", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False and report["backend"] == "koboldcpp"
    assert [c["name"] for c in report["checks"]] == ["reachable"] and report["checks"][0]["fix"]


def test_bad_url_is_reported_not_raised() -> None:
    result = doctor("--backend", "webui", "--endpoint", "https://localhost:5000/v1")
    assert result.exit_code == 1 and "http://localhost:5000" in result.output


# -- text-generation-webui fakes --------------------------------------------------------------------------------------


def _completion(text: str) -> dict:
    return {
        "id": "conv-1",
        "object": "text_completion",
        "created": 1700000000,
        "model": "mistral-7b",
        "choices": [{"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }


def test_webui_without_a_model_says_to_load_one(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "None", "lora_names": []})
    result = doctor("--backend", "webui", "--endpoint", httpserver.url_for("/"))
    assert result.exit_code == 1
    assert "no model loaded" in result.output and "Model tab" in result.output


def test_server_that_ignores_the_grammar_fails_the_grammar_and_parse_checks(httpserver: HTTPServer) -> None:
    # A webui whose loader ignores grammar_string: every answer is plain text.
    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "mistral", "lora_names": []})
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"length": 50})
    httpserver.expect_request("/v1/completions").respond_with_json(_completion("Hello there, friend!"))
    result = doctor("--backend", "webui", "--endpoint", httpserver.url_for("/"), "--samples", "2", "--json")
    assert result.exit_code == 1
    found = checks(result)
    assert found["reachable"]["status"] == OK
    assert found["context"]["status"] == "warn" and "--context-window" in found["context"]["fix"]
    assert found["grammar"]["status"] == FAIL.lower() and "ignored" in found["grammar"]["detail"]
    assert found["parse rate"]["status"] == FAIL.lower() and found["parse rate"]["fix"]
    sent = [json.loads(req.data) for req, _ in httpserver.log if req.path == "/v1/completions"]
    assert any("grammar_string" in body for body in sent), "the grammar probe went out as webui's grammar_string"


def test_the_parse_rate_samples_the_prompt_memgpt_sends_for_a_new_agent(httpserver: HTTPServer, tmp_path) -> None:
    """doctor's figure predicts `memgpt run`: its first sample is byte for byte the first prompt a new agent sends."""
    import re

    from werkzeug import Request, Response

    from memgpt_core.cli.doctor_cmd import AGENT_MESSAGES

    answer = json.dumps({"function": "send_message", "params": {"inner_thoughts": "hi", "message": "Hello!"}})

    def continuing(request: Request) -> Response:
        # As a model under the grammar: the prompt ends with the start of the call the grammar forces (appended by
        # the agent), and the answer is the rest of it.
        body = json.loads(request.get_data())
        cut = next(n for n in range(len(answer), -1, -1) if body["prompt"].endswith(answer[:n]))
        whole = _completion(answer[cut:])
        if not body.get("stream"):
            return Response(json.dumps(whole), content_type="application/json")
        # text-generation-webui's stream: one chunk per piece, the last with its finish_reason, then [DONE].
        chunk = {**whole, "choices": [{**whole["choices"][0], "finish_reason": None}]}
        chunk["choices"][0]["text"] = answer[cut:]
        last = {**whole, "choices": [{**whole["choices"][0], "text": ""}]}
        events = [f"data: {json.dumps(chunk)}", f"data: {json.dumps(last)}", "data: [DONE]"]
        return Response("".join(e + "\n\n" for e in events), content_type="text/event-stream")

    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "mistral", "lora_names": []})
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"length": 50})
    httpserver.expect_request("/v1/completions").respond_with_handler(continuing)
    endpoint = ("--backend", "webui", "--endpoint", httpserver.url_for("/"), "--model", "chatml-grammar")

    env = {**CLEAN_ENV, "MEMGPT_HOME": str(tmp_path)}
    sent = CliRunner().invoke(cli, ["send", "--agent", "fresh", *endpoint, AGENT_MESSAGES[0]], env=env)
    assert sent.exit_code == 0, sent.output
    by_send = [json.loads(req.data)["prompt"] for req, _ in httpserver.log if req.path == "/v1/completions"]
    httpserver.clear_log()
    result = doctor(*endpoint, "--samples", "1", "--json")
    assert checks(result)["parse rate"]["data"]["wrapper"]["readable"] == 1
    by_doctor = [json.loads(req.data)["prompt"] for req, _ in httpserver.log if req.path == "/v1/completions"]

    def timeless(prompt: str) -> str:  # the two runs may straddle a minute
        return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d|\d\d:\d\d", "T", prompt)

    assert AGENT_MESSAGES[0] in by_send[0]
    sampled = [prompt for prompt in by_doctor if AGENT_MESSAGES[0] in prompt]  # chatml-grammar's, then its twin's
    assert timeless(sampled[0]) == timeless(by_send[0])


def test_answers_cut_off_by_the_cap_get_the_max_tokens_advice(httpserver: HTTPServer) -> None:
    # A webui (no grammar wanted: a plain wrapper) whose every answer runs into the token cap mid-call.
    cut = _completion('{"function": "send_message", "params": {"inner_thoughts": "hi", "message": "Hel')
    cut["choices"][0]["finish_reason"] = "length"
    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "mistral", "lora_names": []})
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"length": 50})
    httpserver.expect_request("/v1/completions").respond_with_json(cut)
    result = doctor(
        "--backend", "webui", "--endpoint", httpserver.url_for("/"), "--model", "chatml-grammar",
        "--samples", "2", "--max-tokens", "32", "--json",
    )  # fmt: skip
    parse = checks(result)["parse rate"]
    assert parse["status"] == FAIL.lower()
    assert "32-token cap" in parse["fix"] and "--max-tokens" in parse["fix"]


def _webui_answering_empty(httpserver: HTTPServer) -> None:
    """A text-generation-webui whose model ends every answer at once: ``choices[0].text`` is empty, with
    ``finish_reason`` "stop" and no completion tokens (the webui backend sends no ban-EOS setting)."""
    empty = _completion("")
    empty["usage"] = {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10}
    httpserver.expect_request("/v1/internal/model/info").respond_with_json({"model_name": "mistral", "lora_names": []})
    httpserver.expect_request("/v1/internal/token-count").respond_with_json({"length": 10})
    httpserver.expect_request("/v1/completions").respond_with_json(empty)


def test_a_server_that_only_answers_empty_is_reachable_but_its_speed_unmeasured(httpserver: HTTPServer) -> None:
    from memgpt_core import plugins

    _webui_answering_empty(httpserver)
    backend = plugins.get_backend("webui")(httpserver.url_for("/"))
    assert _check_reachable(backend).status == OK, "an empty answer is still an answer"
    httpserver.clear_log()
    check = _check_speed(backend)
    assert check.status == WARN and "could not measure" in check.detail and check.fix
    assert check.data["tokens_per_second"] is None
    prompts = [json.loads(req.data)["prompt"] for req, _ in httpserver.log if req.path == "/v1/completions"]
    assert prompts == list(SPEED_PROMPTS), "tried once more, with another prompt, before giving up"
