"""The SQLite store: agents, recall search by words and by date with pages, archival search (BM25 alone, and fused
with vectors), the agent lock."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memgpt_core.errors import AgentInUseError, ConfigError, MemGPTError
from memgpt_core.storage import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "memgpt.db") as s:
        yield s


def test_the_database_is_in_wal_mode_under_memgpt_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "home"))
    with Store() as store:
        assert store.path == tmp_path / "home" / "memgpt.db"
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_agents_are_created_listed_found_and_deleted(store):
    a = store.create_agent("alice", persona="p", human="h")
    store.create_agent("bob", persona="p", human="h")
    store.add_message(a.id, "user", "{}", text="hello there")
    store.archival_insert(a.id, "a note")
    assert store.get_agent("alice").id == a.id
    assert store.get_agent(a.id).name == "alice"
    assert [(r.name, m, n) for r, m, n in store.list_agents()] == [("alice", 1, 1), ("bob", 0, 0)]
    store.delete_agent(a)
    assert store.get_agent("alice") is None
    assert store.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert store.search_messages(a.id, "hello").total == 0


def test_a_duplicate_or_malformed_name_is_refused_with_a_sentence(store):
    store.create_agent("alice", persona="p", human="h")
    with pytest.raises(ConfigError, match="already exists"):
        store.create_agent("alice", persona="p", human="h")
    with pytest.raises(ConfigError, match="not a valid agent name"):
        store.create_agent("two words", persona="p", human="h")


def test_a_failed_transaction_leaves_nothing_behind(store):
    a = store.create_agent("alice", persona="p", human="h")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_message(a.id, "user", "{}", text="lost")
        store.archival_insert(a.id, "lost too")
        raise RuntimeError("killed mid-step")
    assert store.count_messages(a.id) == 0
    assert store.count_archival(a.id) == 0


def test_recall_search_ranks_by_words_and_pages(store):
    a = store.create_agent("alice", persona="p", human="h")
    other = store.create_agent("bob", persona="p", human="h")
    for i in range(12):
        store.add_message(a.id, "user", "{}", text=f"message {i} about gardening")
    store.add_message(a.id, "assistant", None, text="I love tomatoes in the garden")
    store.add_message(other.id, "user", "{}", text="bob likes gardening too")
    page1 = store.search_messages(a.id, "gardening", page=1, page_size=5)
    page3 = store.search_messages(a.id, "gardening", page=3, page_size=5)
    assert (page1.total, page1.pages, len(page1.items), len(page3.items)) == (12, 3, 5, 2)
    assert all(text.startswith("user: ") for _, text in page1.items)
    # Words the user typed are never FTS operators; with no message holding all words, any word still matches.
    assert store.search_messages(a.id, 'tomatoes OR "NEAR(').items[0][1] == "you: I love tomatoes in the garden"
    assert store.search_messages(a.id, "zebra").total == 0
    assert store.search_messages(a.id, "?!").total == 0


def test_recall_search_by_date_includes_both_days(store):
    a = store.create_agent("alice", persona="p", human="h")
    store.add_message(a.id, "user", "{}", text="monday", created_at="2026-01-05 23:59:59")
    store.add_message(a.id, "user", "{}", text="tuesday", created_at="2026-01-06 00:00:00")
    store.add_message(a.id, "user", "{}", text="wednesday", created_at="2026-01-07 00:00:00")
    store.add_message(a.id, "function", "{}", created_at="2026-01-06 10:00:00")  # no text: not in recall
    page = store.search_messages_by_date(a.id, "2026-01-05", "2026-01-06")
    assert [text for _, text in page.items] == ["user: monday", "user: tuesday"]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        store.search_messages_by_date(a.id, "last week", "2026-01-06")
    with pytest.raises(ValueError, match="before"):
        store.search_messages_by_date(a.id, "2026-01-06", "2026-01-05")


def test_archival_search_without_an_embedder_is_bm25_relevance(tmp_path):
    store = Store(tmp_path / "words.db", embedder=None)
    a = store.create_agent("alice", persona="p", human="h")
    store.archival_insert(a.id, "The user's cat is called Miso and likes tuna.")
    store.archival_insert(a.id, "The user works as a nurse on night shifts.")
    store.archival_insert(a.id, "Cat cat cat: the user mentioned cats many times, Miso the cat especially.")
    result = store.archival_search(a.id, "Miso cat")
    assert result.total == 2
    assert "cats many times" in result.items[0][1]  # more matches of the words rank first
    assert store.archival_search(a.id, "nurse").items[0][1].endswith("night shifts.")
    store.close()


def test_hybrid_fusion_lets_meaning_break_a_tie_on_words(store):
    # Every note matches only the name, so BM25 ties them; the vectors decide, and the exact word still wins.
    a = store.create_agent("alice", persona="p", human="h")
    notes = [
        "Marta is terrified of spiders.",
        "Marta works as a pastry chef.",
        "Marta adopted a beagle puppy.",
        "Marta drinks green tea every morning.",
    ]
    store.archival_insert_many(a.id, notes)
    assert store.archival_search(a.id, "Does Marta have a dog?").items[0][1] == notes[2]
    assert store.archival_search(a.id, "What frightens Marta?").items[0][1] == notes[0]
    assert store.archival_search(a.id, "What is Marta's breakfast beverage?").items[0][1] == notes[3]
    assert store.archival_search(a.id, "Marta chef").items[0][1] == notes[1]
    page = store.archival_search(a.id, "Marta", page=2, page_size=3)
    assert (page.total, page.pages, len(page.items)) == (4, 2, 1)


def test_deleting_an_agent_deletes_its_vectors_and_attachments(store, tmp_path):
    from memgpt_core.storage.sources import Sources

    a = store.create_agent("alice", persona="p", human="h")
    sources = Sources(store)
    source_id = sources.create("notes")
    sources.save_file(source_id, "/notes.txt", "0" * 64, 10, ["a first note", "a second note"], None)
    sources.attach(a, "notes")
    assert store.conn.execute("SELECT count(*) FROM archival_vectors").fetchone()[0] == 2
    store.delete_agent(a)
    for table in ("archival", "archival_vectors", "source_attachments"):
        assert store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    assert store.conn.execute("SELECT count(*) FROM source_passages").fetchone()[0] == 2  # the source stays


def test_a_second_opener_of_the_same_agent_gets_agent_in_use(store, tmp_path):
    a = store.create_agent("alice", persona="p", human="h")
    lock = store.lock(a)
    with pytest.raises(AgentInUseError, match=r"alice.*in use"):
        store.lock(a)
    # Another process gets the same clear refusal.
    code = (
        "import sys; from memgpt_core.storage import Store; from memgpt_core.errors import AgentInUseError\n"
        f"s = Store({str(tmp_path / 'memgpt.db')!r})\n"
        "try:\n    s.lock(s.get_agent('alice'))\nexcept AgentInUseError as e:\n    print(e); sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "in use by process" in done.stdout
    lock.release()
    store.lock(a).release()  # free again once released


def test_a_killed_holder_does_not_keep_the_agent_locked(store, tmp_path):
    a = store.create_agent("alice", persona="p", human="h")
    code = (
        "import os, signal; from memgpt_core.storage import Store\n"
        f"s = Store({str(tmp_path / 'memgpt.db')!r}); s.lock(s.get_agent('alice'))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    # Killed by its own SIGKILL, so it got past s.lock(): the lock was really held when the process died.
    assert done.returncode == -signal.SIGKILL, done.stderr
    store.lock(a).release()


def test_a_database_from_a_newer_memgpt_is_refused(tmp_path):
    path = tmp_path / "memgpt.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(ConfigError, match="newer memgpt"):
        Store(path)


def test_recall_search_lists_newest_first_and_caps_the_count(store):
    a = store.create_agent("alice", persona="p", human="h")
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO messages (agent_id, created_at, role, content, text) VALUES (?,?,?,?,?)",
            [
                (a.id, f"2026-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}", "user", "{}", f"tea number {i}")
                for i in range(1200)
            ],
        )
    page = store.search_messages(a.id, "tea", page=1, page_size=3)
    assert [text for _, text in page.items] == [
        "user: tea number 1199",
        "user: tea number 1198",
        "user: tea number 1197",
    ]
    assert (page.total, page.more) == (1000, True)
    assert store.search_messages(a.id, "number 7").total == 1  # all words: only "tea number 7"


# -- a MEMGPT_HOME that cannot be used, and a damaged database: sentences with the right fix ------------------------


def _agents_list(monkeypatch, home):
    from click.testing import CliRunner

    from memgpt_core.cli import cli

    monkeypatch.setenv("MEMGPT_HOME", str(home))
    return CliRunner().invoke(cli, ["agents", "list"])


def _assert_clean_failure(result):
    """The command failed with a click error (exit 1), not an exception escaping the CLI."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["under_a_file", "under_proc"])
def test_an_unusable_memgpt_home_is_a_config_error_naming_the_folder(tmp_path, monkeypatch, where):
    if where == "under_a_file":
        blocker = tmp_path / "regular-file"
        blocker.write_text("not a folder")
        home = blocker / "memgpt"
        cause = f"{blocker} is a file, not a folder"
    else:
        home = "/proc/memgpt-test-nope/home"
        cause = "No such file or directory"
    with pytest.raises(ConfigError) as caught:
        Store(Path(home) / "memgpt.db")
    assert str(home) in caught.value.message and cause in caught.value.message
    assert "MEMGPT_HOME" in caught.value.fix and "writ" in caught.value.fix

    result = _agents_list(monkeypatch, home)
    _assert_clean_failure(result)
    assert str(home) in result.output and cause in result.output
    assert "set MEMGPT_HOME to a folder you can write to" in result.output


def test_a_memgpt_home_that_is_a_file_is_refused_by_the_cli(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("oops")
    result = _agents_list(monkeypatch, home)
    _assert_clean_failure(result)
    assert f"{home}" in result.output and "is a file, not a folder" in result.output
    assert home.read_text() == "oops"


def test_a_memgpt_home_where_files_cannot_be_created_is_a_config_error(monkeypatch):
    # /proc exists and is a folder, but nobody (not even root) can create a file in it.
    with pytest.raises(ConfigError) as caught:
        Store(Path("/proc") / "memgpt.db")
    assert "/proc" in caught.value.message and "unable to open database file" in caught.value.message
    assert "MEMGPT_HOME" in caught.value.fix
    result = _agents_list(monkeypatch, "/proc")
    _assert_clean_failure(result)
    assert "/proc/memgpt.db" in result.output


def test_a_damaged_database_says_move_it_aside_not_check_the_folder(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    db = home / "memgpt.db"
    db.write_bytes(bytes(range(256)) * 32)
    with pytest.raises(MemGPTError) as caught:
        Store(db)
    err = caught.value
    assert not isinstance(err, ConfigError)
    assert "file is not a database" in err.message and str(db) in err.message and "damaged" in err.message
    assert "writable" not in err.fix
    assert f"move {db}" in err.fix and "starts a new" in err.fix and "backup" in err.fix

    result = _agents_list(monkeypatch, home)
    _assert_clean_failure(result)
    assert "file is not a database" in result.output and f"move {db}" in result.output

    # Following the fix works: with the file moved aside, memgpt starts a fresh database there.
    db.rename(home / "memgpt.db.damaged")
    with Store(db) as store:
        assert store.list_agents() == []
