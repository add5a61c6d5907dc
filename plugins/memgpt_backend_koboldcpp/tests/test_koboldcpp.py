"""The koboldcpp backend against the real KoboldCpp 1.76 (built from source and started by conftest.py), with the
SmolLM2 model: the request KoboldCpp receives (read from its own console), its answers, its errors, ``--password``,
a busy server, and a prompt too long for its context.

Only two tests run without KoboldCpp: ones that must fail before anything is sent (a closed port proves nothing
was), and one fake for an answer no KoboldCpp gives (see its docstring).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from memgpt_backend_koboldcpp import KoboldCppBackend
from pytest_httpserver import HTTPServer

from memgpt_core.errors import (
    BackendHTTPError,
    BackendResponseError,
    ConfigError,
    ContextOverflowError,
    EmptyCompletionError,
)
from memgpt_core.models import CompletionRequest, Grammar
from memgpt_core.testing import BackendConformance, closed_port

GBNF = 'root ::= "yes" | "no"'
GREEDY = {"temperature": 0}
"""KoboldCpp samples greedily at temperature 0, so the same prompt gives the same answer."""
ENDS_AT_ONCE = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
"""A finished ChatML exchange: SmolLM2, sampled greedily, answers it with its end-of-text token and nothing else."""


class TestKoboldCppConformance(BackendConformance):
    backend_class = KoboldCppBackend

    @pytest.fixture
    def endpoint(self, koboldcpp_server: str) -> str:
        return koboldcpp_server


# -- talking to KoboldCpp directly, to pin what it does without our backend in between ------------------------------


def _call(url: str, path: str, body: Any = None, *, key: str | None = None) -> tuple[int, Any]:
    import requests

    session = requests.Session()
    session.trust_env = False  # loopback: never through a proxy
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if body is None:
        response = session.get(url + path, headers=headers, timeout=120)
    else:
        response = session.post(url + path, json=body, headers=headers, timeout=120)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "KoboldCpp never got into the state the test needs"
        time.sleep(0.05)


# -- the request and the answer -------------------------------------------------------------------------------------


def test_koboldcpp_receives_its_own_field_names(koboldcpp_process: Any) -> None:
    backend = KoboldCppBackend(koboldcpp_process.url)
    prompt = "Is the sky blue? Answer:"
    done = backend.complete(
        CompletionRequest(
            prompt=prompt,
            max_tokens=16,
            stop=["\nUSER:", "</s>"],
            grammar=Grammar(format="gbnf", text=GBNF),
            context_window=2048,
            sampling={"temperature": 0.3, "seed": 7, "repeat_penalty": 1.1},
        )
    )
    assert done.text in ("yes", "no") and done.finish_reason == "stop"
    assert done.prompt_tokens == backend.count_tokens(prompt)
    assert koboldcpp_process.received()[-1] == {
        "temperature": 0.3,
        "sampler_seed": 7,
        "rep_pen": 1.1,
        "prompt": prompt,
        "max_length": 16,
        "stop_sequence": ["\nUSER:", "</s>"],
        "trim_stop": False,
        "max_context_length": 2048,
        "grammar": GBNF,
        "grammar_retain_state": False,
    }
    assert _call(koboldcpp_process.url, "/api/extra/perf")[1]["last_seed"] == 7, "KoboldCpp used the seed we sent"


def test_without_a_window_koboldcpps_own_context_is_sent(koboldcpp_process: Any) -> None:
    backend = KoboldCppBackend(koboldcpp_process.url)
    backend.complete(CompletionRequest(prompt="Hello", max_tokens=4))
    backend.complete(CompletionRequest(prompt="Hello again", max_tokens=4))
    sent = [body["max_context_length"] for body in koboldcpp_process.received()[-2:]]
    assert sent == [koboldcpp_process.context_size] * 2


def test_a_stop_string_ends_the_answer_is_cut_off_and_counts_as_stop(koboldcpp_server: str) -> None:
    backend = KoboldCppBackend(koboldcpp_server)
    prompt = "Count: one, two, three,"
    free = backend.complete(CompletionRequest(prompt=prompt, max_tokens=16, sampling=GREEDY))
    stop = free.text.split()[1]  # the second word the model writes on its own
    # KoboldCpp itself calls a stop-string hit "length", exactly like the token cap.
    body = {"prompt": prompt, "max_length": 16, "temperature": 0, "stop_sequence": [stop]}
    status, raw = _call(koboldcpp_server, "/api/v1/generate", body)
    assert status == 200 and raw["results"][0]["finish_reason"] == "length" and stop in raw["results"][0]["text"]
    stopped = backend.complete(CompletionRequest(prompt=prompt, max_tokens=16, stop=[stop], sampling=GREEDY))
    assert stopped.finish_reason == "stop", "a stop string ended it: the answer is complete"
    assert stopped.text == free.text[: free.text.index(stop)] and stop not in stopped.text


def test_the_token_cap_is_length(koboldcpp_server: str) -> None:
    done = KoboldCppBackend(koboldcpp_server).complete(
        CompletionRequest(prompt="Count: one, two, three,", max_tokens=3, sampling=GREEDY)
    )
    assert done.finish_reason == "length" and done.text


def test_an_answer_ended_at_once_is_empty_and_ban_eos_keeps_the_model_writing(koboldcpp_process: Any) -> None:
    url = koboldcpp_process.url
    backend = KoboldCppBackend(url)
    status, raw = _call(url, "/api/v1/generate", {"prompt": ENDS_AT_ONCE, "max_length": 12, "temperature": 0})
    assert status == 200
    assert raw["results"][0] == {"text": "", "finish_reason": "stop"}, "SmolLM2 no longer ends this prompt at once"
    with pytest.raises(EmptyCompletionError, match="end-of-text") as caught:
        backend.complete(CompletionRequest(prompt=ENDS_AT_ONCE, max_tokens=12, sampling=GREEDY))
    assert url in str(caught.value) and caught.value.fix
    done = backend.complete(CompletionRequest(prompt=ENDS_AT_ONCE, max_tokens=12, sampling=GREEDY, ban_eos=True))
    assert done.text and done.finish_reason == "length"
    assert koboldcpp_process.received()[-1]["ban_eos_token"] is True
    perf = _call(url, "/api/extra/perf")[1]
    assert perf["last_token_count"] == 12 and perf["stop_reason"] == 0, "KoboldCpp generated up to the cap"


def test_an_invalid_grammar_is_ignored_by_koboldcpp_not_refused(koboldcpp_server: str) -> None:
    # Why `memgpt doctor` checks that a constrained answer really obeys the grammar: KoboldCpp only logs the error.
    # End-of-text banned: without the grammar SmolLM2 often ends this prompt at once, and an empty answer is an error.
    done = KoboldCppBackend(koboldcpp_server).complete(
        CompletionRequest(
            prompt="Is the sky green? Answer:",
            max_tokens=8,
            grammar=Grammar(format="gbnf", text="root ::= ((( x"),
            ban_eos=True,
        )
    )
    assert done.text.strip()


# -- token counts, context, model -----------------------------------------------------------------------------------


def test_token_counts_come_from_koboldcpp(koboldcpp_server: str) -> None:
    backend = KoboldCppBackend(koboldcpp_server)
    status, raw = _call(koboldcpp_server, "/api/extra/tokencount", {"prompt": "Hello there, how are you?"})
    assert status == 200 and backend.count_tokens("Hello there, how are you?") == raw["value"] == len(raw["ids"])


def test_a_text_past_koboldcpps_count_limit_is_counted_in_pieces(koboldcpp_server: str) -> None:
    backend = KoboldCppBackend(koboldcpp_server)
    line = "hello world\n"  # the same tokens wherever the text is cut between two lines
    one, two = backend.count_tokens(line * 1000), backend.count_tokens(line * 2000)
    per_thousand, bos = two - one, 2 * one - two
    huge = line * 40000
    status, raw = _call(koboldcpp_server, "/api/extra/tokencount", {"prompt": huge})
    assert status == 200 and raw["value"] == 0, "KoboldCpp answers 0 for 50000 tokens or more"
    assert backend.count_tokens(huge) == 40 * per_thousand + bos


def test_context_model_and_version(koboldcpp_process: Any) -> None:
    backend = KoboldCppBackend(koboldcpp_process.url)
    assert backend.context_window() == koboldcpp_process.context_size
    assert backend.model_name() == f"koboldcpp/{koboldcpp_process.model.stem}"
    status, version = _call(koboldcpp_process.url, "/api/extra/version")
    assert status == 200 and version["result"] == "KoboldCpp" and version["version"] == "1.76"
    assert version["protected"] is False


def test_a_prompt_longer_than_the_context_is_refused_before_it_is_sent(koboldcpp_process: Any) -> None:
    backend = KoboldCppBackend(koboldcpp_process.url)
    context = koboldcpp_process.context_size
    prompt = "hello world\n" * (context // 2)  # about 3 tokens a line: past the context
    generations = len(koboldcpp_process.received())
    # Asking for more context than KoboldCpp has does not help: it would lower the request to its own.
    with pytest.raises(ContextOverflowError) as caught:
        backend.complete(CompletionRequest(prompt=prompt, max_tokens=16, context_window=context * 2))
    assert caught.value.context_window == context
    assert caught.value.prompt_tokens == backend.count_tokens(prompt)
    assert "--contextsize" in str(caught.value)
    assert len(koboldcpp_process.received()) == generations, "an overflowing prompt must not be sent"


def test_koboldcpp_itself_silently_drops_the_start_of_a_long_prompt(koboldcpp_factory: Callable[..., Any]) -> None:
    small = koboldcpp_factory(context_size=256)
    prompt = "the cat sat on the mat.\n" * 50  # about 400 tokens
    status, raw = _call(small.url, "/api/v1/generate", {"prompt": prompt, "max_length": 2})
    assert status == 200 and "results" in raw, "KoboldCpp answered as if nothing was wrong"
    with pytest.raises(ContextOverflowError) as caught:
        KoboldCppBackend(small.url).complete(CompletionRequest(prompt=prompt, max_tokens=2))
    assert caught.value.context_window == 256


# -- --password -----------------------------------------------------------------------------------------------------


def test_password_protects_generation_and_token_counts(koboldcpp_factory: Callable[..., Any]) -> None:
    password = "kobold-pass-5678"
    guarded = koboldcpp_factory("--password", password)
    assert _call(guarded.url, "/api/extra/version")[1]["protected"] is True

    anonymous = KoboldCppBackend(guarded.url)
    assert anonymous.context_window() == guarded.context_size, "the context size is not protected"
    assert anonymous.model_name() == "koboldcpp/protected-model"
    with pytest.raises(BackendHTTPError) as counting:
        anonymous.count_tokens("hello")
    with pytest.raises(BackendHTTPError) as generating:
        anonymous.complete(CompletionRequest(prompt="x", max_tokens=2))
    for caught in (counting, generating):
        assert caught.value.status == 401 and "Authentication key is missing or invalid" in str(caught.value)
        assert "--password" in (caught.value.fix or "") and "MEMGPT_API_KEY" in (caught.value.fix or "")
    status, raw = _call(guarded.url, "/api/v1/generate", {"prompt": "x", "max_length": 2})
    assert status == 401 and raw["detail"]["type"] == "unauthorized", "generation is protected too"

    wrong = KoboldCppBackend(guarded.url, api_key="wrong-one-999")
    with pytest.raises(BackendHTTPError) as caught:
        wrong.complete(CompletionRequest(prompt="x", max_tokens=2))
    assert caught.value.status == 401 and "refused" in (caught.value.fix or "")
    assert "wrong-one-999" not in str(caught.value)
    assert guarded.received() == [], "nothing was generated without the password"

    keyed = KoboldCppBackend(guarded.url, api_key=password)
    assert keyed.model_name() == f"koboldcpp/{guarded.model.stem}"
    assert keyed.count_tokens("hello") > 0
    assert keyed.complete(CompletionRequest(prompt="Once upon a time", max_tokens=4, ban_eos=True)).text


# -- a busy KoboldCpp -----------------------------------------------------------------------------------------------


def test_a_busy_koboldcpp_is_waited_for_then_reported(koboldcpp_factory: Callable[..., Any]) -> None:
    # --multiuser 0: KoboldCpp refuses (503) instead of queueing while it generates, and for 50 ms after each answer.
    single = koboldcpp_factory("--multiuser", "0")
    backend = KoboldCppBackend(single.url)
    for turn in range(4):  # back to back: each meets the 50 ms after the last answer
        assert backend.complete(CompletionRequest(prompt=f"Hello number {turn}", max_tokens=2, ban_eos=True)).text

    long = {"prompt": "Once upon a time, a long story:", "max_length": 2000, "ban_eos_token": True}
    _wait_for(lambda: _call(single.url, "/api/extra/perf")[1]["idle"] == 1)
    other = threading.Thread(target=_call, args=(single.url, "/api/v1/generate", long))
    other.start()
    try:
        _wait_for(lambda: long in single.received())  # KoboldCpp took it and is generating
        status, raw = _call(single.url, "/api/v1/generate", {"prompt": "x", "max_length": 2})
        assert status == 503 and raw["detail"]["msg"] == "Server is busy; please try again later."
        hasty = KoboldCppBackend(single.url)
        hasty.busy_wait = 0.5
        with pytest.raises(BackendHTTPError) as caught:
            hasty.complete(CompletionRequest(prompt="x", max_tokens=2))
        assert caught.value.status == 503 and "busy" in str(caught.value)
        assert "--multiuser 0" in (caught.value.fix or "")
        # A patient backend gets its turn once the other generation ends (here: aborted a second from now).
        threading.Timer(1.0, _call, args=(single.url, "/api/extra/abort", {})).start()
        assert backend.complete(CompletionRequest(prompt="Once upon a time", max_tokens=2, ban_eos=True)).text
    finally:
        _call(single.url, "/api/extra/abort", {})
        other.join(timeout=120)


# -- the wrong server, the wrong path ---------------------------------------------------------------------------------


def test_a_path_koboldcpp_does_not_serve(koboldcpp_server: str) -> None:
    backend = KoboldCppBackend(koboldcpp_server)
    with pytest.raises(BackendHTTPError) as caught:
        backend.request("GET", "/api/v1/no-such-route")
    assert caught.value.status == 404 and "this endpoint does not exist" in caught.value.body
    with pytest.raises(BackendHTTPError) as caught:
        backend.request("POST", "/api/v1/no-such-route", {})
    assert caught.value.status == 404 and caught.value.body == "", "KoboldCpp answers a POST there with no body"
    assert "OPENAI_API_BASE" in (caught.value.fix or "")


def test_pointed_at_a_server_that_is_not_koboldcpp(llama_server: Any) -> None:
    backend = KoboldCppBackend(llama_server.url)
    assert backend.context_window() is None, "no /api/extra/true_max_context_length there: the context is unknown"
    with pytest.raises(BackendHTTPError) as caught:
        backend.complete(CompletionRequest(prompt="x", max_tokens=2))
    assert caught.value.status == 404 and "BACKEND_TYPE" in (caught.value.fix or "")


# -- without a server -----------------------------------------------------------------------------------------------


def test_refuses_a_json_schema_grammar_before_sending_anything() -> None:
    # Nothing listens on the port: any request would end in BackendUnavailableError, not in this ConfigError.
    backend = KoboldCppBackend(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ConfigError, match="GBNF") as caught:
        backend.complete(
            CompletionRequest(
                prompt="x", max_tokens=2, context_window=512, grammar=Grammar(format="json_schema", text="{}")
            )
        )
    assert backend.endpoint in str(caught.value)


def test_an_answer_without_results_is_a_response_error(httpserver: HTTPServer) -> None:
    """A fake, because no KoboldCpp answers /api/v1/generate like this: a proxy or another server there answering
    other JSON, here KoboldCpp's own answer shape for its basic ``/request`` route (``{"data": {"seqs": [...]}}``).
    The context size and token count are answered as KoboldCpp does."""
    httpserver.expect_request("/api/extra/true_max_context_length").respond_with_json({"value": 4096})
    httpserver.expect_request("/api/extra/tokencount").respond_with_json({"value": 2, "ids": [1, 104]})
    httpserver.expect_request("/api/v1/generate").respond_with_json({"data": {"seqs": ["x"]}})
    with pytest.raises(BackendResponseError) as caught:
        KoboldCppBackend(httpserver.url_for("/")).complete(CompletionRequest(prompt="x", max_tokens=2))
    assert "results[0].text" in str(caught.value) and "OPENAI_API_BASE" in (caught.value.fix or "")
    (sent,) = [json.loads(req.data) for req, _ in httpserver.log if req.path == "/api/v1/generate"]
    assert sent["max_context_length"] == 4096


@pytest.mark.parametrize(
    "pasted",
    [
        "http://127.0.0.1:5001/api/v1/generate",
        "http://127.0.0.1:5001/api/v1",
        "http://127.0.0.1:5001/v1",
        "http://127.0.0.1:5001/api/extra/generate/stream",
        "127.0.0.1:5001/",
    ],
)
def test_pasted_urls_are_normalised(pasted: str) -> None:
    assert KoboldCppBackend(pasted).endpoint == "http://127.0.0.1:5001"


def test_https_to_a_local_port_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"http://localhost:5001"):
        KoboldCppBackend("https://localhost:5001")
