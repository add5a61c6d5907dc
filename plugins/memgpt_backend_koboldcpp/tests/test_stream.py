"""The koboldcpp backend's ``stream`` against the real KoboldCpp 1.76 (``/api/extra/generate/stream``): pieces as
KoboldCpp writes them, the same text and stop-string handling as ``complete``, grammars, and an early close."""

from __future__ import annotations

from typing import Any

from memgpt_backend_koboldcpp import KoboldCppBackend

from memgpt_core.backend import Delta
from memgpt_core.models import CompletionRequest, Grammar

GREEDY = {"temperature": 0}
"""KoboldCpp samples greedily at temperature 0, so the same prompt gives the same answer."""


def _joined(pieces: list[Delta]) -> str:
    return "".join(piece.text for piece in pieces)


def test_pieces_arrive_as_koboldcpp_writes_them_and_join_to_the_completion(koboldcpp_process: Any) -> None:
    backend = KoboldCppBackend(koboldcpp_process.url)
    request = CompletionRequest(prompt="Once upon a time", max_tokens=48, ban_eos=True, sampling=GREEDY)
    # KoboldCpp reuses the last prompt's cache ("fast forward"), and a greedy answer read from the cache can differ
    # from one after a full evaluation: run the prompt once first, so the stream and complete() below both reuse it.
    backend.complete(request)
    pieces = list(backend.stream(request))
    assert len([piece for piece in pieces if piece.text]) > 1
    assert [piece.completion is not None for piece in pieces] == [False] * (len(pieces) - 1) + [True]
    done = pieces[-1].completion
    assert done.text == _joined(pieces) and done.finish_reason == "length"
    assert done.prompt_tokens == backend.count_tokens(request.prompt)
    # The same body as complete() sends, to the streaming path.
    body = koboldcpp_process.received()[-1]
    assert body["max_length"] == 48 and body["trim_stop"] is False and body["ban_eos_token"] is True
    assert done.text == backend.complete(request).text


def test_a_stop_string_is_cut_off_and_counts_as_stop_as_in_complete(koboldcpp_server: str) -> None:
    backend = KoboldCppBackend(koboldcpp_server)
    prompt = "Count: one, two, three,"
    free = backend.complete(CompletionRequest(prompt=prompt, max_tokens=16, sampling=GREEDY))
    stop = free.text.split()[1]  # the second word the model writes on its own
    request = CompletionRequest(prompt=prompt, max_tokens=16, stop=[stop], sampling=GREEDY)
    pieces = list(backend.stream(request))
    done = pieces[-1].completion
    assert done.finish_reason == "stop"
    assert done.text == _joined(pieces) == free.text[: free.text.index(stop)]
    assert stop not in _joined(pieces)
    assert done.text == backend.complete(request).text


def test_the_grammar_is_respected_in_a_stream(koboldcpp_server: str) -> None:
    backend = KoboldCppBackend(koboldcpp_server)
    request = CompletionRequest(
        prompt="Is the sky green? Answer:",
        max_tokens=24,  # room for either answer, even spelled one character per token
        grammar=Grammar(format="gbnf", text='root ::= "yes, certainly" | "no, not at all"'),
        sampling={"temperature": 1.0, "sampler_seed": 3},
    )
    pieces = list(backend.stream(request))
    done = pieces[-1].completion
    assert done.text == _joined(pieces)
    assert done.text in ("yes, certainly", "no, not at all")
    assert done.finish_reason == "stop"  # the grammar's end lets only the end-of-text token through


def test_an_early_close_leaves_koboldcpp_ready_for_the_next_request(koboldcpp_server: str) -> None:
    backend = KoboldCppBackend(koboldcpp_server)
    stream = backend.stream(CompletionRequest(prompt="Write a long story.", max_tokens=400, ban_eos=True))
    assert next(stream).completion is None
    stream.close()
    # KoboldCpp runs one generation at a time: had the first kept going, this one would wait for all 400 tokens
    # (or meet "busy"); it must come back with its own short answer.
    done = backend.complete(CompletionRequest(prompt="Once upon a time", max_tokens=4, sampling=GREEDY))
    assert done.text and done.finish_reason in ("stop", "length")
    again = list(backend.stream(CompletionRequest(prompt="Once upon a time", max_tokens=4, sampling=GREEDY)))
    assert again[-1].completion.text and again[-1].completion.text == _joined(again)
