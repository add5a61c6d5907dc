"""Archival memory by meaning: the shipped embedder, hybrid search, `memgpt load` / `attach` / `list sources`,
re-embedding, a version-1 database, and the start-up imports. (The llama-server embedder: test_archival_server.py;
SIGKILL during a load: test_archival_crash.py.)"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from memgpt_core.cli import cli
from memgpt_core.embeddings import (
    DIM_ENV,
    TYPE_ENV,
    EmbeddingMismatchError,
    EmbeddingSettings,
    ShippedEmbedder,
    make_embedder,
)
from memgpt_core.errors import ConfigError
from memgpt_core.storage import Store
from memgpt_core.storage.documents import split_passages
from memgpt_core.storage.sources import Sources

NOTES = [
    "My sister Ana turns thirty on the fourth of May.",
    "The car needs new brakes before winter.",
    "I prefer green tea to coffee in the morning.",
    "Ann's dog is a beagle named Toast.",
    "The user works as a nurse on night shifts.",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("ENDPOINT_TYPE", "ENDPOINT", "MODEL", "DIM", "CHUNK_SIZE", "API_KEY"):
        monkeypatch.delenv(f"MEMGPT_EMBEDDING_{name}", raising=False)
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "home"))


def memgpt(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    return result


# -- the shipped embedder and hybrid search -------------------------------------------------------------------------


def test_the_shipped_model_is_the_default_and_finds_meaning_without_shared_words():
    embedder, why = make_embedder()
    assert why is None and isinstance(embedder, ShippedEmbedder)
    with Store() as store:
        agent = store.create_agent("ann", persona="p", human="h")
        for note in NOTES:
            store.archival_insert(agent.id, note)
        # Not one word in common with the note it should find:
        assert store.archival_search(agent.id, "vehicle maintenance").items[0][1] == NOTES[1]
        assert store.archival_search(agent.id, "what does she drink at breakfast").items[0][1] == NOTES[2]
        assert store.archival_search(agent.id, "hospital job schedule").items[0][1] == NOTES[4]
        # Nothing related at all: no results, rather than the least unrelated note.
        assert store.archival_search(agent.id, "spaceship").total == 0
        # Words still count: the word-for-word match comes first.
        assert store.archival_search(agent.id, "beagle").items[0][1] == NOTES[3]
        rows = store.conn.execute("SELECT embedder, dim, length(vector) FROM archival_vectors").fetchall()
    assert rows == [("wordllama:l2_supercat_256", 256, 256 * 4)] * len(NOTES)


def test_the_shipped_model_loads_from_its_wheel_without_network(tmp_path):
    # A fresh process with HOME elsewhere: wordllama's cache is empty, so a download attempt would fail loudly.
    code = (
        "from memgpt_core.embeddings import ShippedEmbedder\n"
        "v = ShippedEmbedder().embed(['hello world'])\n"
        "print(v.shape, round(float((v[0] ** 2).sum()), 3))\n"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 256) 1.0"
    assert not (tmp_path / ".cache").exists()


def test_words_only_when_vector_search_is_off_said_once(monkeypatch, caplog):
    monkeypatch.setenv(TYPE_ENV, "none")
    with Store() as store:
        agent = store.create_agent("ann", persona="p", human="h")
        for note in NOTES:
            store.archival_insert(agent.id, note)
        assert store.archival_search(agent.id, "vehicle maintenance").total == 0  # no shared word: not found
        assert store.archival_search(agent.id, "brakes").items[0][1] == NOTES[1]
        assert store.conn.execute("SELECT count(*) FROM archival_vectors").fetchone()[0] == 0
        assert store.hybrid is not None
        assert len(store.hybrid.notes) == 1 and "words only" in store.hybrid.notes[0]
    assert sum("words only" in r.getMessage() for r in caplog.records) == 1


def test_bad_embedding_settings_are_refused_with_the_fix(monkeypatch):
    monkeypatch.setenv("MEMGPT_EMBEDDING_ENDPOINT", "http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="MEMGPT_EMBEDDING_ENDPOINT_TYPE is not") as caught:
        EmbeddingSettings.from_env()
    assert "llamacpp" in caught.value.fix
    monkeypatch.setenv(TYPE_ENV, "koboldcpp")
    with pytest.raises(ConfigError, match="cannot make embeddings") as caught:
        make_embedder()
    assert "llamacpp" in caught.value.fix
    monkeypatch.delenv("MEMGPT_EMBEDDING_ENDPOINT")
    monkeypatch.setenv(TYPE_ENV, "local")
    monkeypatch.setenv(DIM_ENV, "768")
    embedder, _ = make_embedder()
    with pytest.raises(EmbeddingMismatchError, match="256 dimensions, but MEMGPT_EMBEDDING_DIM says 768"):
        embedder.embed(["x"])
    monkeypatch.setenv(DIM_ENV, "many")
    with pytest.raises(ConfigError, match="MEMGPT_EMBEDDING_DIM='many' is not a positive whole number"):
        make_embedder()


def test_an_agent_whose_embedder_fails_still_saves_and_searches_by_words(monkeypatch, caplog):
    monkeypatch.setenv(TYPE_ENV, "local")
    monkeypatch.setenv(DIM_ENV, "768")  # every embedding now fails with a mismatch
    with Store() as store:
        agent = store.create_agent("ann", persona="p", human="h")
        store.archival_insert(agent.id, NOTES[1])
        store.archival_insert(agent.id, NOTES[2])
        assert store.count_archival(agent.id) == 2
        assert store.archival_search(agent.id, "brakes").items[0][1] == NOTES[1]
    said = [r.getMessage() for r in caplog.records if "without vectors" in r.getMessage()]
    assert len(said) == 1 and "768" in said[0]


def test_an_embedder_change_is_said_once_and_reembed_fixes_it(tmp_path):
    db = tmp_path / "home" / "memgpt.db"
    with Store(db, embedder=None) as store:  # written before any embedder: no vectors at all
        agent = store.create_agent("ann", persona="p", human="h")
        store.archival_insert_many(agent.id, NOTES * 80)  # 400 passages: more than a search fills in by itself
        # The same passages' vectors, as an earlier model had made them (another name, another size).
        store.conn.execute(
            "INSERT INTO archival_vectors SELECT id, agent_id, 'oldserver:old-model', 3, zeroblob(12) FROM archival "
            "WHERE id <= 100"
        )
    with Store(db) as store:
        agent = store.get_agent("ann")
        assert store.archival_search(agent.id, "brakes").items[0][1] == NOTES[1]  # found by words meanwhile
        store.archival_search(agent.id, "brakes")
        assert store.hybrid is not None
        [note] = store.hybrid.notes
        assert "400 of agent ann's 400 archival passages have no vector from the current embedder" in note
        assert "100 embedded by oldserver:old-model" in note and "300 with no vector" in note
        assert "memgpt archival reembed --agent ann" in note

    status = memgpt("archival", "status", "--agent", "ann")
    assert status.exit_code == 0, status.output
    assert "100  oldserver:old-model" in status.output and "300  no vector" in status.output
    result = memgpt("archival", "reembed", "--agent", "ann")
    assert result.exit_code == 0, result.output
    assert "embedded 400 archival passages of agent ann with wordllama:l2_supercat_256" in result.output
    with Store(db) as store:
        agent = store.get_agent("ann")
        assert store.archival_vector_counts(agent.id) == {"wordllama:l2_supercat_256": 400}
        assert store.archival_search(agent.id, "vehicle maintenance").items[0][1] == NOTES[1]
        assert store.hybrid is not None and store.hybrid.notes == []
    assert "already has a vector" in memgpt("archival", "reembed", "--agent", "ann").output


def test_a_dimension_mismatch_under_one_name_is_a_clear_message_and_nothing_is_lost(tmp_path, caplog):
    db = tmp_path / "home" / "memgpt.db"
    with Store(db) as store:
        agent = store.create_agent("ann", persona="p", human="h")
        store.archival_insert_many(agent.id, NOTES)
        # The model behind the same name once returned 3 numbers per vector.
        store.conn.execute("UPDATE archival_vectors SET dim = 3, vector = zeroblob(12) WHERE id = 1")
    with Store(db) as store:
        agent = store.get_agent("ann")
        assert store.archival_search(agent.id, "brakes").items[0][1] == NOTES[1]
        assert store.count_archival(agent.id) == len(NOTES)
    [said] = [r.getMessage() for r in caplog.records if "dimensions" in r.getMessage()]
    assert "have 3 and 256 dimensions" in said and "no passage is lost" in said
    assert "fix: memgpt archival reembed --agent ann" in said
    assert memgpt("archival", "reembed", "--agent", "ann", "--all").exit_code == 0
    with Store(db) as store:
        agent = store.get_agent("ann")
        assert store.archival_search(agent.id, "vehicle maintenance").items[0][1] == NOTES[1]


def test_cached_vectors_follow_other_writers_and_rolled_back_inserts(tmp_path):
    db = tmp_path / "memgpt.db"
    with Store(db) as reader, Store(db) as writer:
        agent = reader.create_agent("ann", persona="p", human="h")
        reader.archival_insert(agent.id, NOTES[0])
        assert reader.archival_search(agent.id, "vehicle maintenance").total == 0
        writer.archival_insert(agent.id, NOTES[1])  # another connection: the reader's cache must notice
        assert reader.archival_search(agent.id, "vehicle maintenance").items[0][1] == NOTES[1]
        with pytest.raises(RuntimeError), reader.transaction():
            reader.archival_insert(agent.id, "The van is due for its service at the garage.")
            assert len(reader.archival_search(agent.id, "vehicle maintenance").items) == 2
            raise RuntimeError("the step failed")
        page = reader.archival_search(agent.id, "vehicle maintenance")
        assert [text for _, text in page.items] == [NOTES[1]]


def test_a_version_1_database_is_upgraded_with_every_row_kept(tmp_path):
    db = tmp_path / "memgpt.db"
    conn = sqlite3.connect(db)
    conn.executescript(V1_SCHEMA)
    conn.execute("INSERT INTO agents VALUES ('a1','ann','2026-01-01 00:00:00','{}','p','h',2000,2000,'[]','{}')")
    conn.executemany(
        "INSERT INTO archival (agent_id, created_at, content) VALUES ('a1', '2026-01-01 00:00:00', ?)",
        [(n,) for n in NOTES],
    )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with Store(db) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert store.count_archival("a1") == len(NOTES)
        # The first search gives the few old passages their vectors, and finds by meaning.
        assert store.archival_search("a1", "vehicle maintenance").items[0][1] == NOTES[1]
        assert store.archival_vector_counts("a1") == {"wordllama:l2_supercat_256": len(NOTES)}
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- memgpt load, list sources, attach ------------------------------------------------------------------------------


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer says ``text`` (written out by hand, so the test needs no PDF writer)."""
    content = f"BT /F1 12 Tf 10 50 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 100] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "garden.md").write_text("# Garden\n\nThe tomatoes need watering every evening in July.\n")
    (folder / "car.txt").write_text("The hatchback's brakes squeal; the garage booked it in for Tuesday.\n")
    (folder / "sub" / "tea.txt").write_text("Green tea goes in the blue tin on the top shelf.\n")
    (folder / "manual.pdf").write_bytes(tiny_pdf("The boiler pressure should read one point five bar."))
    (folder / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))  # not UTF-8
    (folder / "gone.txt").symlink_to(folder / "deleted-long-ago.txt")  # a link to nothing
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")  # not a document: not even looked at
    (folder / ".hidden.txt").write_text("hidden notes")
    return folder


def test_load_a_folder_with_unreadable_files_reports_each_and_loads_the_rest(docs):
    result = memgpt("load", "directory", "--name", "house", "--input-dir", str(docs))
    assert result.exit_code == 0, result.output
    assert f"skipped {docs / 'latin1.txt'}: not UTF-8 text" in result.output
    assert f"skipped {docs / 'gone.txt'}: No such file or directory" in result.output
    assert f"skipped {docs / 'broken.pdf'}: pypdf could not read it" in result.output
    assert "loaded 3 files (3 passages), 3 unreadable into data source house" in result.output
    with Store() as store:
        files = dict(store.conn.execute("SELECT path, passages FROM source_files").fetchall())
        contents = [r[0] for r in store.conn.execute("SELECT content FROM source_passages ORDER BY id")]
    assert sorted(Path(p).name for p in files) == ["car.txt", "garden.md", "manual.pdf"]  # sub/ needs --recursive
    assert "# Garden\nThe tomatoes need watering every evening in July." in contents
    assert "The boiler pressure should read one point five bar." in contents

    again = memgpt("load", "directory", "--name", "house", "--input-dir", str(docs), "--recursive")
    assert "loaded 1 file (1 passages), 3 unchanged, 3 unreadable into data source house" in again.output
    (docs / "car.txt").write_text("The hatchback passed its inspection; the brakes are new.\n")
    changed = memgpt("load", "file", "--name", "house", str(docs / "car.txt"), str(docs / "sub" / "tea.txt"))
    assert "loaded 1 file (1 passages), 1 unchanged into data source house" in changed.output
    with Store() as store:
        contents = [r[0] for r in store.conn.execute("SELECT content FROM source_passages")]
    assert "The hatchback passed its inspection; the brakes are new." in contents
    assert not any("squeal" in c for c in contents)  # the file's old passages were replaced, not kept beside it

    listed = json.loads(memgpt("list", "sources", "--json").output)
    assert listed == [
        {
            "name": "house",
            "created_at": listed[0]["created_at"],
            "files": 4,
            "passages": 4,
            "embedders": {"wordllama:l2_supercat_256": 4},
            "agents": [],
        }
    ]


def test_load_refuses_a_missing_folder_and_a_bad_name(tmp_path):
    missing = memgpt("load", "directory", "--name", "x", "--input-dir", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "does not exist" in missing.output
    bad = memgpt("load", "file", "--name", "two words", str(tmp_path))
    assert bad.exit_code == 1 and "not a valid source name" in bad.output
    assert "no data sources yet" in memgpt("list", "sources").output


def test_attach_copies_passages_with_their_vectors_once(docs):
    memgpt("load", "directory", "--name", "house", "--input-dir", str(docs), "--extensions", "md,txt")
    with Store() as store:
        agent = store.create_agent("ann", persona="p", human="h")
        store.archival_insert(agent.id, "Ann likes jazz.")
    result = memgpt("attach", "--agent", "ann", "--data-source", "house")
    assert result.exit_code == 0, result.output
    assert "2 passages copied (3 in its archival memory)" in result.output
    with Store() as store:
        agent = store.get_agent("ann")
        assert store.archival_vector_counts(agent.id) == {"wordllama:l2_supercat_256": 3}
        hit = store.archival_search(agent.id, "when should I water the vegetables").items[0][1]
        assert hit.startswith("# Garden")
    assert "already has every passage" in memgpt("attach", "--agent", "ann", "--data-source", "house").output
    (docs / "new.txt").write_text("The spare key is under the third flowerpot.\n")
    memgpt("load", "file", "--name", "house", str(docs / "new.txt"))
    assert (
        "1 passages copied (4 in its archival memory)"
        in memgpt("attach", "--agent", "ann", "--data-source", "house").output
    )
    table = memgpt("list", "sources").output
    assert "house" in table and "ann" in table

    missing = memgpt("attach", "--agent", "ann", "--data-source", "nope")
    assert (
        missing.exit_code == 1 and "no data source named 'nope'" in missing.output and "memgpt load" in missing.output
    )
    nobody = memgpt("attach", "--agent", "bob", "--data-source", "house")
    assert nobody.exit_code == 1 and "no agent named 'bob'" in nobody.output


def test_attach_refuses_an_agent_in_use(docs):
    memgpt("load", "file", "--name", "house", str(docs / "car.txt"))
    with Store() as store:
        agent = store.create_agent("ann", persona="p", human="h")
        lock = store.lock(agent)
        try:
            result = memgpt("attach", "--agent", "ann", "--data-source", "house")
        finally:
            lock.release()
        assert store.count_archival(agent.id) == 0
    assert result.exit_code == 1 and "in use" in result.output


def test_passages_fit_the_chunk_size_and_keep_their_heading():
    text = "# Title\n\nShort intro.\n\n## Part two\n\n" + " ".join(f"Sentence number {i} is here." for i in range(200))
    passages = split_passages(text, 50, markdown=True)
    assert passages[0] == "# Title\nShort intro."
    assert passages[1].startswith("## Part two\nSentence number 0 is here.")
    assert all(len(p) <= 200 for p in passages)
    assert " ".join(passages).count("Sentence number") == 200  # nothing dropped
    assert split_passages("x" * 1000, 50) == ["x" * 200] * 5  # a word longer than a passage is cut


# -- start-up -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["plugins", "list"], ["load", "--help"], ["list", "--help"]])
def test_start_up_never_imports_numpy_or_the_model(args):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "memgpt_core", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(m for m in imported if m.split(".")[0] in ("numpy", "wordllama", "tokenizers", "pypdf"))
    assert heavy == [], f"`memgpt {' '.join(args)}` imports {heavy}"


def test_sources_survive_in_the_same_database_file(docs):
    memgpt("load", "file", "--name", "house", str(docs / "car.txt"))
    with Store() as store:
        assert store.path.name == "memgpt.db"
        assert [s.name for s in Sources(store).list()] == ["house"]


V1_SCHEMA = """
CREATE TABLE agents (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, config TEXT NOT NULL,
    persona TEXT NOT NULL, human TEXT NOT NULL, persona_limit INTEGER NOT NULL, human_limit INTEGER NOT NULL,
    context TEXT NOT NULL, state TEXT NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE, created_at TEXT NOT NULL, role TEXT NOT NULL,
    name TEXT, content TEXT, function_call TEXT, text TEXT NOT NULL DEFAULT '');
CREATE INDEX messages_by_date ON messages(agent_id, created_at);
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.text != '' BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.text != '' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE archival (id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE, created_at TEXT NOT NULL, content TEXT NOT NULL);
CREATE INDEX archival_by_agent ON archival(agent_id);
CREATE VIRTUAL TABLE archival_fts USING fts5(content, content='archival', content_rowid='id');
CREATE TRIGGER archival_fts_insert AFTER INSERT ON archival BEGIN
    INSERT INTO archival_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER archival_fts_delete AFTER DELETE ON archival BEGIN
    INSERT INTO archival_fts(archival_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
"""
"""The schema of version 1 (commit 9f016d8), as a database from then has it."""
