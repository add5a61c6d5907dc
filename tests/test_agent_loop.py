"""The agent loop: timestamped events, heartbeat rules and cap, the retry path, cut-off answers, grammar, budgets.

The model's answers are scripted (ScriptedBackend); wrapper, parser, grammar provider and store are the real ones.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys

import pytest

from memgpt_core import plugins
from memgpt_core.agent import TurnFailedError
from memgpt_core.agent.agent import Agent, AgentSettings
from memgpt_core.agent.testing import GrammarScriptedBackend, ScriptedBackend, call_text, make_agent

REPLY = call_text("send_message", "reply", message="ok!")


def table_counts(store):
    return tuple(store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("messages", "archival"))


def test_user_input_reaches_the_model_as_a_timestamped_event(store, wrapper):
    backend = ScriptedBackend([REPLY])
    agent = make_agent(store, backend, wrapper)
    agent.user_message("I like kites")
    event = json.loads(agent.context[0].content)
    assert event["type"] == "user_message" and event["message"] == "I like kites"
    # A short time only: the date is in the core memory heading, so the model has no long stamp to copy.
    assert re.fullmatch(r"\d\d:\d\d", event["time"])
    prompt = backend.requests[0].prompt
    assert agent.context[0].content in prompt
    heading = prompt.index("### Core memory (as of ")
    assert re.match(r"### Core memory \(as of \d{4}-\d\d-\d\d \d\d:\d\d UTC;", prompt[heading:])
    assert heading < prompt.index("I like kites")


def test_request_heartbeat_chains_steps_until_a_message(store, wrapper):
    backend = ScriptedBackend(
        [
            call_text("conversation_search", query="kites", request_heartbeat=True),
            call_text("core_memory_append", name="human", content="likes kites", request_heartbeat=True),
            REPLY,
        ]
    )
    agent = make_agent(store, backend, wrapper)
    result = agent.user_message("I like kites")
    assert [s.function for s in result.steps] == ["conversation_search", "core_memory_append", "send_message"]
    assert [s.heartbeat for s in result.steps] == ["request_heartbeat == true", "request_heartbeat == true", None]
    heartbeats = [json.loads(m.content) for m in agent.context if m.role == "user"][1:]
    assert [h["type"] for h in heartbeats] == ["heartbeat", "heartbeat"]
    assert '"type": "heartbeat"' in backend.requests[1].prompt


def test_the_heartbeat_cap_stops_a_runaway_chain(store, wrapper):
    loop = call_text("archival_memory_search", query="kites", request_heartbeat=True)
    backend = ScriptedBackend(default=loop)
    agent = make_agent(store, backend, wrapper, heartbeat_cap=3)
    result = agent.user_message("hi")
    assert len(result.steps) == 3 and len(backend.requests) == 3
    assert result.events[-1].type == "status" and "heartbeat cap" in result.events[-1].text


def test_a_search_right_after_a_user_message_gets_a_heartbeat_anyway(store, wrapper):
    backend = ScriptedBackend([call_text("conversation_search", query="kites", request_heartbeat=False), REPLY])
    agent = make_agent(store, backend, wrapper, reply_heartbeat=False)
    result = agent.user_message("what did I say about kites?")
    assert [s.function for s in result.steps] == ["conversation_search", "send_message"]
    assert result.replies == ["ok!"]


def test_without_reply_heartbeats_a_memory_edit_that_asks_for_none_ends_the_turn(store, wrapper):
    backend = ScriptedBackend([call_text("core_memory_append", name="human", content="x", request_heartbeat=False)])
    agent = make_agent(store, backend, wrapper, reply_heartbeat=False)
    result = agent.user_message("hi")
    assert [s.heartbeat for s in result.steps] == [None]


def test_by_default_any_function_right_after_a_user_message_leads_to_a_reply(store, wrapper):
    backend = ScriptedBackend(
        [call_text("core_memory_append", name="human", content="x", request_heartbeat=False), REPLY]
    )
    agent = make_agent(store, backend, wrapper)
    assert agent.user_message("hi").replies == ["ok!"]


def test_no_heartbeat_after_a_heartbeat_step_unless_asked(store, wrapper):
    backend = ScriptedBackend(
        [
            call_text("archival_memory_insert", content="a", request_heartbeat=True),
            call_text("conversation_search", query="a", request_heartbeat=False),
        ]
    )
    agent = make_agent(store, backend, wrapper, reply_heartbeat=False)
    result = agent.user_message("hi")
    assert [s.heartbeat for s in result.steps] == ["request_heartbeat == true", None]


def test_a_user_turn_that_would_end_unanswered_gets_one_more_step_to_reply(store, wrapper):
    backend = ScriptedBackend(
        [
            call_text("archival_memory_insert", content="a", request_heartbeat=True),
            call_text("core_memory_append", name="human", content="b", request_heartbeat=False),
            REPLY,
        ]
    )
    agent = make_agent(store, backend, wrapper)
    result = agent.user_message("hi")
    assert result.replies == ["ok!"]
    assert "the user is still waiting for an answer" in backend.requests[2].prompt


def test_after_the_free_steps_the_next_step_may_only_reply(store):
    backend = GrammarScriptedBackend(
        [call_text("archival_memory_search", query=c, request_heartbeat=True) for c in "abc"] + [REPLY]
    )
    agent = make_agent(store, backend, plugins.get_wrapper("chatml-grammar"), heartbeat_cap=8, free_steps=3)
    assert agent.user_message("hi").replies == ["ok!"]
    assert [_offered(r) == {"send_message"} for r in backend.requests] == [False, False, False, True]


def test_a_failing_function_gets_a_heartbeat_so_the_model_can_correct_itself(store, wrapper):
    backend = ScriptedBackend(
        [
            call_text(
                "core_memory_replace", name="human", old_content="nope", new_content="x", request_heartbeat=False
            ),
            call_text(
                "core_memory_replace", name="human", old_content="unknown", new_content="Ann", request_heartbeat=False
            ),
            REPLY,
        ]
    )
    agent = make_agent(store, backend, wrapper, reply_heartbeat=False)
    result = agent.user_message("I'm Ann")
    assert [(s.function, s.ok) for s in result.steps] == [("core_memory_replace", False), ("core_memory_replace", True)]
    assert "old_content was not found" in backend.requests[1].prompt
    assert agent.record.human == "The user's name is Ann."


def test_unreadable_output_is_retried_with_fresh_sampling(store, wrapper):
    backend = ScriptedBackend(["I think I will say hello", REPLY])
    agent = make_agent(store, backend, wrapper)
    result = agent.user_message("hi")
    assert result.replies == ["ok!"] and result.steps[0].attempts == 2
    assert "temperature" not in backend.requests[0].sampling
    assert backend.requests[1].sampling["temperature"] > 0.7
    assert backend.requests[0].prompt == backend.requests[1].prompt


def test_after_the_retries_the_user_gets_the_raw_text_and_a_fix_and_nothing_changed(store, wrapper):
    backend = ScriptedBackend([REPLY])
    agent = make_agent(store, backend, wrapper, parse_retries=2)
    agent.user_message("first")
    before_context, before_tables = list(agent.record.context), table_counts(store)
    backend.answers = ["no json here", "still none", "<|im_end|> nothing"]
    with pytest.raises(TurnFailedError) as caught:
        agent.user_message("second")
    error = caught.value
    assert len(backend.requests) == 1 + 3
    assert error.raw.endswith("<|im_end|> nothing") and "<|im_end|> nothing" in str(error)
    assert "after 3 tries" in str(error) and "-grammar wrapper" in str(error)
    assert agent.record.context == before_context and table_counts(store) == before_tables
    assert store.get_agent("tester").context == before_context
    # The next turn works as if the failed one never happened.
    backend.answers = [REPLY]
    assert agent.user_message("third").replies == ["ok!"]
    assert "second" not in backend.requests[-1].prompt


def test_a_cut_off_answer_is_not_parsed_as_whole_and_gets_more_room(store, wrapper):
    cut = '{"function": "send_message", "params": {"inner_thoughts": "long thoughts about'
    backend = ScriptedBackend([(cut, "length"), REPLY])
    agent = make_agent(store, backend, wrapper, max_tokens=64)
    result = agent.user_message("hi")
    assert result.replies == ["ok!"]
    assert [r.max_tokens for r in backend.requests] == [64, 128]


def test_a_recoverable_cut_off_call_is_used_and_marked(store, wrapper):
    cut = '{"function": "send_message", "params": {"inner_thoughts": "hm", "message": "Hello there"'
    backend = ScriptedBackend([(cut, "length")])
    agent = make_agent(store, backend, wrapper)
    result = agent.user_message("hi")
    assert result.replies == ["Hello there"] and result.steps[0].truncated


def test_requests_carry_the_agent_id_as_cache_key_and_a_bounded_output_cap(store, wrapper):
    backend = ScriptedBackend([REPLY])
    agent = make_agent(store, backend, wrapper, max_tokens=300)
    agent.user_message("hi")
    request = backend.requests[0]
    assert request.cache_key == agent.record.id
    assert request.max_tokens == 300
    assert request.context_window == 8192
    assert set(getattr(wrapper, "stop_sequences", ())) <= set(request.stop)


def test_the_output_cap_shrinks_to_what_the_context_has_left(store, wrapper):
    backend = ScriptedBackend([REPLY], window=100_000)
    agent = make_agent(store, backend, wrapper, max_tokens=512)
    prompt_tokens = agent.counter.count(agent.build_prompt([]))
    agent.window = prompt_tokens + 450  # room for the message and a reply shorter than the 512 asked for
    agent.user_message("hi")
    request = backend.requests[0]
    assert request.max_tokens < 450
    assert agent.counter.count(request.prompt) + request.max_tokens == agent.window


def test_the_grammar_is_built_and_sent_when_wrapper_and_backend_agree(store):
    backend = GrammarScriptedBackend([REPLY])
    agent = make_agent(store, backend, plugins.get_wrapper("chatml-grammar"))
    agent.user_message("hi")
    grammar = backend.requests[0].grammar
    assert grammar is not None and grammar.format == "gbnf" and grammar.provider == "function-call"
    assert "core_memory_append" in grammar.text and agent.grammar_note is None


def test_grammar_sampling_off_is_explained(store, wrapper):
    no_grammar_backend = make_agent(store, ScriptedBackend(), plugins.get_wrapper("chatml-grammar"), name="a")
    assert no_grammar_backend.grammar is None
    assert "scripted backend accepts no grammar" in no_grammar_backend.grammar_note
    plain_wrapper = make_agent(store, GrammarScriptedBackend(), wrapper, name="b")
    assert plain_wrapper.grammar is None and "use a -grammar wrapper" in plain_wrapper.grammar_note
    neither = make_agent(store, ScriptedBackend(), wrapper, name="c")
    assert neither.grammar_note is None


def test_the_prompt_prefix_stays_byte_stable_from_turn_to_turn(store, wrapper):
    backend = ScriptedBackend(default=REPLY)
    agent = make_agent(store, backend, wrapper)
    agent.user_message("first message")
    agent.user_message("second message")
    first, second = backend.requests[0].prompt, backend.requests[1].prompt
    # The whole first prompt, up to the assistant's opening, is the start of the second: nothing trails the messages.
    stable = first[: first.rindex("<|im_start|>")]
    assert "first message" in stable and "### Core memory" in stable
    assert second.startswith(stable)
    assert second.index("### Core memory") < second.index("first message") < second.index("second message")


def test_a_core_memory_edit_leaves_the_prompt_prefix_unchanged(store, wrapper):
    backend = ScriptedBackend(
        [
            REPLY,
            REPLY,
            call_text("core_memory_append", name="human", content="Flies kites", request_heartbeat=True),
            REPLY,
            REPLY,
        ]
    )
    agent = make_agent(store, backend, wrapper)
    agent.user_message("hello")
    agent.user_message("how are you")
    agent.user_message("I fly kites")
    agent.user_message("and you?")
    before_edit, after_edit, next_turn = (r.prompt for r in backend.requests[2:5])
    # Everything the server saw before the edit is reused; the edit adds only its call and its result, which shows
    # the block's new text. The snapshot at the top still shows core memory as it was.
    prefix = before_edit[: before_edit.rindex("<|im_start|>")]
    assert after_edit.startswith(prefix) and next_turn.startswith(after_edit[: after_edit.rindex("<|im_start|>")])
    tail = after_edit[len(prefix) :]
    assert "core_memory_append" in tail and "Flies kites" in tail and "It now reads" in tail
    assert "how are you" not in tail and "### Core memory" not in tail
    assert "Flies kites" not in after_edit[: after_edit.index("how are you")]
    assert agent.record.human.endswith("Flies kites")


def test_an_answer_is_written_back_as_the_model_wrote_it_unless_it_changed(store):
    grammar_wrapper = plugins.get_wrapper("chatml-grammar")
    # Odd but valid spacing: the canonical layout would differ, and the server would read the answer again.
    odd = '{ "function":"send_message",\n "params":{"inner_thoughts":"hi","message":"Hello there!"} }'
    backend = ScriptedBackend([odd, REPLY, odd, REPLY])
    agent = make_agent(store, backend, grammar_wrapper)
    agent.user_message("hello")
    agent.user_message("again")
    assert f"<|im_start|>assistant\n{odd}<|im_end|>" in backend.requests[1].prompt
    # A call changed after the fact (/rewrite) no longer matches the model's text: written in the canonical layout.
    edited = make_agent(store, backend, grammar_wrapper, name="edited")
    edited.user_message("hello")
    edited.rewrite("Hi, friend!")
    edited.user_message("again")
    assert odd not in backend.requests[3].prompt and "Hi, friend!" in backend.requests[3].prompt


def test_a_delivered_message_needs_no_result_in_the_prompt_but_a_failed_one_shows_its_error(store, wrapper):
    backend = ScriptedBackend([REPLY, call_text("send_message", message="  "), REPLY, REPLY])
    agent = make_agent(store, backend, wrapper)
    agent.user_message("hello")
    agent.user_message("again")
    assert "Result of send_message" not in backend.requests[1].prompt  # "OK" says nothing the call does not
    assert "Result of send_message" in backend.requests[2].prompt and "message is empty" in backend.requests[2].prompt
    assert [m.name for m in agent.context if m.role == "function"] == ["send_message"] * 3  # all still stored


def test_a_summary_retakes_the_core_memory_snapshot(store, wrapper):
    backend = ScriptedBackend(
        [
            call_text("core_memory_append", name="human", content="Flies kites", request_heartbeat=True),
            REPLY,
            call_text("save_summary", summary="We talked about kites."),
            REPLY,
        ]
    )
    agent = make_agent(store, backend, wrapper)
    agent.user_message("I fly kites")
    assert "Flies kites" not in agent.system_prompt()  # shown by the edit's result until the next summary
    assert agent.summarize()
    assert "Flies kites" in agent.system_prompt()
    agent.user_message("hello again")
    assert "Flies kites" in backend.requests[-1].prompt.split("We talked about kites")[0]
    # The instructions and the function documentation come before the snapshot, so a summary leaves them cached.
    before = backend.requests[0].prompt
    stable = before[: before.index("### Core memory")]
    assert "Functions:" in stable and backend.requests[-1].prompt.startswith(stable)


def test_one_memory_write_after_a_user_message_then_the_grammar_admits_only_send_message(store, wrapper):
    grammar_wrapper = plugins.get_wrapper("chatml-grammar")
    append = call_text("core_memory_append", name="human", content="Likes tea", request_heartbeat=True)
    backend = GrammarScriptedBackend([append, REPLY, append, REPLY])
    agent = make_agent(store, backend, grammar_wrapper)
    result = agent.user_message("I like tea")
    assert [s.function for s in result.steps] == ["core_memory_append", "send_message"]
    assert _offered(backend.requests[0]) > {"core_memory_append", "send_message"}
    assert _offered(backend.requests[1]) == {"send_message"}
    # A search does not use up the write: after search, write, the reply is forced, not before.
    backend.answers = [
        call_text("archival_memory_search", query="tea", request_heartbeat=True),
        append,
        REPLY,
    ]
    result = agent.user_message("what do I drink?")
    assert [s.function for s in result.steps] == ["archival_memory_search", "core_memory_append", "send_message"]
    assert "core_memory_append" in _offered(backend.requests[-2]) and _offered(backend.requests[-1]) == {"send_message"}


def test_pause_heartbeats_right_after_a_user_message_still_leads_to_a_reply(store, wrapper):
    backend = GrammarScriptedBackend([call_text("pause_heartbeats", minutes=5), REPLY])
    agent = make_agent(store, backend, plugins.get_wrapper("chatml-grammar"), reply_heartbeat=False)
    result = agent.user_message("hi")
    assert [s.function for s in result.steps] == ["pause_heartbeats", "send_message"]
    assert result.replies == ["ok!"] and _offered(backend.requests[1]) == {"send_message"}
    assert "does not answer the user" in backend.requests[1].prompt


def test_a_paused_chain_later_in_a_user_turn_gets_a_reply_step_too(store, wrapper):
    backend = ScriptedBackend(
        [
            call_text("conversation_search", query="x", request_heartbeat=True),
            call_text("pause_heartbeats", minutes=5),
            REPLY,
        ]
    )
    agent = make_agent(store, backend, wrapper)
    result = agent.user_message("hi")
    assert [s.function for s in result.steps] == ["conversation_search", "pause_heartbeats", "send_message"]
    assert "the user is still waiting for an answer" in backend.requests[2].prompt


def test_every_completed_step_is_stored_and_an_agent_reopens_as_it_was(store, wrapper):
    backend = ScriptedBackend(
        [call_text("core_memory_append", name="human", content="Likes tea", request_heartbeat=True), REPLY]
    )
    agent = make_agent(store, backend, wrapper)
    agent.user_message("I like tea")
    agent.lock.release()
    record = store.get_agent("tester")
    again = Agent(store, record, ScriptedBackend(), wrapper, AgentSettings())
    assert [m.to_chat() for m in again.context] == [m.to_chat() for m in agent.context]
    assert again.record.human.endswith("Likes tea")
    assert again.build_prompt([]) == agent.build_prompt([])


def test_rethink_rewrite_pop_and_retry(store, wrapper):
    backend = ScriptedBackend([REPLY, call_text("send_message", message="second answer")])
    agent = make_agent(store, backend, wrapper)
    agent.user_message("hi")
    agent.rethink("new thoughts")
    agent.rewrite("new words")
    assert agent.context[-2].content == "new thoughts"
    assert json.loads(agent.context[-2].function_call["arguments"])["message"] == "new words"
    assert store.search_messages(agent.record.id, "new words").total == 1
    result = agent.retry()
    assert result.replies == ["second answer"]
    assert sum(1 for m in agent.context if m.role == "assistant") == 1
    assert agent.pop(3) == 3 and len(agent.context) == 0
    assert store.count_messages(agent.record.id) == 0


def test_login_greets_and_remembers_the_last_login(store, wrapper):
    backend = ScriptedBackend([call_text("send_message", message="Welcome!")])
    agent = make_agent(store, backend, wrapper)
    assert agent.login().replies == ["Welcome!"]
    assert json.loads(agent.context[0].content)["last_login"] == "never"
    assert store.get_agent("tester").state["last_login"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX file locks")
def test_a_second_agent_object_on_the_same_agent_is_refused(store, wrapper):
    from memgpt_core.errors import AgentInUseError

    first = make_agent(store, ScriptedBackend(), wrapper)
    with pytest.raises(AgentInUseError, match="in use"):
        make_agent(store, ScriptedBackend(), wrapper)
    first.lock.release()


@pytest.mark.skipif(os.name == "nt", reason="POSIX file locks and SIGKILL")
def test_a_killed_holder_does_not_keep_the_agent_locked(store, wrapper, tmp_path):
    from memgpt_core.errors import AgentInUseError

    make_agent(store, ScriptedBackend(), wrapper).lock.release()  # the agent exists, and nobody holds it
    # Another process opens the same agent, says so once it holds the lock, and waits to be killed.
    holder = (
        "import sys\n"
        "from memgpt_core.storage import Store\n"
        f"store = Store({str(tmp_path / 'memgpt.db')!r})\n"
        "lock = store.lock(store.get_agent('tester'))\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready = select.select([child.stdout], [], [], 60)[0]
        assert ready, "the holder did not take the lock within 60 s"
        assert child.stdout.readline().strip() == "locked", child.stderr.read()
        # While it lives, the agent is refused, naming the process that holds it.
        with pytest.raises(AgentInUseError, match=rf"'tester' is in use by process {child.pid}"):
            make_agent(store, ScriptedBackend(), wrapper)
        child.kill()  # SIGKILL: no clean-up runs in the child
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=60)
        child.stdin.close()
        child.stdout.close()
        child.stderr.close()
    # The OS dropped the lock with the process: the agent opens, and works.
    agent = make_agent(store, ScriptedBackend([REPLY]), wrapper)
    assert agent.user_message("hi").replies == ["ok!"]
    agent.lock.release()


def _offered(request):
    """Function names a request's grammar admits (the grammar lists each offered name as a literal)."""
    from memgpt_core.agent.functions import SCHEMA_BY_NAME

    return {name for name in SCHEMA_BY_NAME if f'\\"{name}\\"' in request.grammar.text}


def test_a_call_repeated_in_one_turn_makes_the_next_step_reply_only(store):
    search = call_text("archival_memory_search", query="kites", request_heartbeat=True)
    backend = GrammarScriptedBackend([search, search, REPLY])
    agent = make_agent(store, backend, plugins.get_wrapper("chatml-grammar"), heartbeat_cap=6)
    result = agent.user_message("hi")
    assert [len(_offered(r)) for r in backend.requests[:2]] == [8, 8]
    assert _offered(backend.requests[2]) == {"send_message"}
    assert result.replies == ["ok!"]
    assert "now answer the user with send_message" in backend.requests[2].prompt


def test_the_last_step_the_cap_allows_may_only_reply(store):
    backend = GrammarScriptedBackend(
        [
            call_text("archival_memory_search", query="a", request_heartbeat=True),
            call_text("archival_memory_search", query="b", request_heartbeat=True),
            REPLY,
        ]
    )
    agent = make_agent(store, backend, plugins.get_wrapper("chatml-grammar"), heartbeat_cap=3)
    assert agent.user_message("hi").replies == ["ok!"]
    assert [_offered(r) == {"send_message"} for r in backend.requests] == [False, False, True]
