"""Each agent function's semantics, as the model sees them: the result it gets back, and what changed in memory.

The model's answers are scripted (ScriptedBackend); the prompt goes through the real ChatML wrapper, the answer
through core's real parser, and everything is stored in a real SQLite store.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from memgpt_core.agent.testing import ScriptedBackend, call_text, make_agent


def run(store, wrapper, *answers, message="hello", **settings):
    """One user turn with scripted answers; a final send_message is appended so every turn ends."""
    backend = ScriptedBackend([*answers], default=call_text("send_message", "done", message="done"))
    agent = make_agent(store, backend, wrapper, **settings)
    result = agent.user_message(message)
    agent.lock.release()
    return agent, result


def returns(agent):
    """Every function result in the context: (function name, status, message)."""
    out = []
    for m in agent.context:
        if m.role == "function":
            body = json.loads(m.content)
            out.append((m.name, body["status"], body["message"]))
    return out


def test_send_message_is_what_the_user_reads(store, wrapper):
    agent, result = run(store, wrapper, call_text("send_message", "greet", message="Hi there!"))
    assert result.replies == ["Hi there!"]
    assert [e.type for e in result.events] == ["inner_thoughts", "function_call", "assistant_message"]
    assert returns(agent) == [("send_message", "OK", None)]


def test_an_empty_message_fails_back_to_the_model(store, wrapper):
    agent, result = run(store, wrapper, call_text("send_message", message="  "))
    assert returns(agent)[0][:2] == ("send_message", "Failed")
    assert "message is empty" in returns(agent)[0][2]
    assert result.replies == ["done"]  # the failure got a heartbeat, and the model answered properly


def test_core_memory_append_adds_a_line_and_reports_the_size(store, wrapper):
    agent, _ = run(
        store, wrapper, call_text("core_memory_append", name="human", content="Name: Ann", request_heartbeat=True)
    )
    assert agent.record.human == "The user's name is unknown.\nName: Ann"
    size = len(agent.record.human)
    # The result carries the block's new text: the prompt's snapshot shows it only after the next summary.
    assert returns(agent)[0] == (
        "core_memory_append",
        "OK",
        f"Added to human. It now reads ({size}/2000 characters):\n{agent.record.human}",
    )
    assert f'<human characters="{size}/2000">' in agent.memory_text()
    # The change is stored, not just in memory.
    assert store.get_agent("tester").human == agent.record.human


def test_core_memory_append_over_the_limit_fails_and_changes_nothing(store, wrapper):
    big = "x" * 1990
    agent, result = run(
        store, wrapper, call_text("core_memory_append", name="persona", content=big, request_heartbeat=False)
    )
    name, status, message = returns(agent)[0]
    assert (name, status) == ("core_memory_append", "Failed")
    assert "over its limit of 2000" in message
    assert agent.record.persona == "I am Sam, a friendly companion."
    assert result.steps[0].heartbeat is not None  # a failure always returns control to the model


def test_core_memory_replace_changes_exact_text_and_can_delete(store, wrapper):
    agent, _ = run(
        store,
        wrapper,
        call_text(
            "core_memory_replace", name="human", old_content="unknown", new_content="Ann", request_heartbeat=True
        ),
        call_text(
            "core_memory_replace",
            name="persona",
            old_content=", a friendly companion",
            new_content="",
            request_heartbeat=True,
        ),
    )
    assert agent.record.human == "The user's name is Ann."
    assert agent.record.persona == "I am Sam."
    assert [r[1] for r in returns(agent)[:2]] == ["OK", "OK"]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"name": "human", "old_content": "Bob", "new_content": "Ann"}, "old_content was not found in human"),
        ({"name": "human", "old_content": "", "new_content": "y"}, "old_content is empty"),
        ({"name": "human", "old_content": "unknown", "new_content": "y" * 2100}, "over its limit"),
    ],
)
def test_core_memory_replace_errors_go_back_to_the_model(store, wrapper, arguments, error):
    agent, _ = run(store, wrapper, call_text("core_memory_replace", request_heartbeat=False, **arguments))
    assert returns(agent)[0][1] == "Failed"
    assert error in returns(agent)[0][2]
    assert agent.record.human == "The user's name is unknown."


def test_conversation_search_finds_earlier_messages_in_pages(store, wrapper):
    backend = ScriptedBackend(default=call_text("send_message", message="noted"))
    agent = make_agent(store, backend, wrapper)
    for i in range(7):
        agent.user_message(f"my favourite colour number {i} is teal")
    backend.answers = [
        call_text("conversation_search", query="teal colour", page=2, request_heartbeat=True),
        call_text("conversation_search", query="", request_heartbeat=True),
    ]
    agent.user_message("what colours did I mention?")
    (_, status, found), (_, status2, empty) = returns(agent)[-3:-1]
    assert status == "OK"
    assert found.startswith("7 messages, page 2 of 2:")
    assert found.count("\n- [") == 2 and "user: my favourite colour number" in found
    assert (status2, empty) == ("Failed", "Error: query is empty; pass the words to look for")


def test_conversation_search_date_lists_a_day_and_rejects_bad_dates(store, wrapper):
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    agent, _ = run(
        store,
        wrapper,
        call_text("conversation_search_date", start_date=today, end_date=today, request_heartbeat=True),
        call_text("conversation_search_date", start_date="yesterday", end_date=today, request_heartbeat=True),
        call_text("conversation_search_date", start_date=today, end_date=today, page=0, request_heartbeat=True),
        message="remember the tulips",
    )
    results = returns(agent)
    assert results[0][1] == "OK" and "user: remember the tulips" in results[0][2]
    assert results[1] == (
        "conversation_search_date",
        "Failed",
        "Error: start_date 'yesterday' is not a date in the form YYYY-MM-DD",
    )
    assert results[2] == ("conversation_search_date", "Failed", "Error: page starts at 1")


def test_archival_memory_insert_then_search(store, wrapper):
    agent, _ = run(
        store,
        wrapper,
        call_text("archival_memory_insert", content="Ann's dog is a beagle named Toast.", request_heartbeat=True),
        call_text("archival_memory_search", query="dog name", request_heartbeat=True),
        call_text("archival_memory_search", query="spaceship", request_heartbeat=True),
    )
    results = returns(agent)
    assert results[0] == ("archival_memory_insert", "OK", "Saved to archival memory.")
    assert results[1][1] == "OK" and "beagle named Toast" in results[1][2]
    assert results[2] == ("archival_memory_search", "OK", "No passages found.")
    assert store.count_archival(agent.record.id) == 1
    assert "Archival memory: 1 passages" in agent.memory_text()


def test_pause_heartbeats_ends_the_chain_and_checks_its_range(store, wrapper):
    agent, result = run(
        store, wrapper, call_text("pause_heartbeats", minutes=500), call_text("pause_heartbeats", minutes=10)
    )
    assert returns(agent)[0][1] == "Failed" and "between 1 and 360" in returns(agent)[0][2]
    assert returns(agent)[1] == ("pause_heartbeats", "OK", "Heartbeats paused for 10 minutes.")
    assert result.steps[-1].heartbeat is None  # pausing waits for the user: no reply step follows
    assert agent.record.state["heartbeats_paused_minutes"] == 10


def test_a_call_missing_a_required_argument_is_never_run(store, wrapper):
    # Core's parser refuses it (a wrong call is worse than none), so the step samples again; nothing is stored.
    agent, result = run(store, wrapper, call_text("archival_memory_insert", request_heartbeat=True))
    assert result.steps[0].attempts == 2
    assert returns(agent) == [("send_message", "OK", None)]
    assert store.count_archival(agent.record.id) == 0


@pytest.mark.parametrize(
    "answer",
    [
        call_text("conversation_search", query="x", page="two", request_heartbeat=True),
        call_text("core_memory_replace", name="diary", old_content="x", new_content="y", request_heartbeat=True),
    ],
    ids=["a string for an integer", "a value outside the enum"],
)
def test_an_argument_of_the_wrong_type_is_never_run(store, wrapper, answer):
    # As with a missing argument: the parser refuses the call and the step samples again.
    agent, result = run(store, wrapper, answer)
    assert result.steps[0].attempts == 2
    assert returns(agent) == [("send_message", "OK", None)]


def test_every_function_has_a_schema_and_heartbeat_where_it_should():
    from memgpt_core.agent.functions import SCHEMAS

    names = {s["name"] for s in SCHEMAS}
    assert names == {
        "send_message",
        "pause_heartbeats",
        "core_memory_append",
        "core_memory_replace",
        "conversation_search",
        "conversation_search_date",
        "archival_memory_insert",
        "archival_memory_search",
    }
    for schema in SCHEMAS:
        assert schema["description"]
        properties = schema["parameters"]["properties"]
        assert all(p.get("description") for p in properties.values())
        assert ("request_heartbeat" in properties) == (schema["name"] not in ("send_message", "pause_heartbeats"))
