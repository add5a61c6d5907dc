"""The settings order (one case per level), the config file in MemGPT 0.3's own format, and broken config files.

The order, highest first: flags; then ``BACKEND_TYPE``/``OPENAI_API_BASE`` (and memgpt's other variables); then the
agent's stored choices; then the config file; then the embedded default. The MemGPT fixture is built the way
pymemgpt 0.3.25's ``MemGPTConfig.save`` writes it (see ``memgpt_style_config``).
"""

from __future__ import annotations

import configparser
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memgpt_core import settings_file
from memgpt_core.config import Choices, choose, connect, make_backend, resolve, takes_model_name
from memgpt_core.errors import ConfigError, NotInstalledError
from memgpt_core.storage import Store

NO_VARIABLES: dict[str, str] = {}


def load(path: Path) -> tuple[settings_file.ConfigFile, str]:
    """The file as memgpt reads it, and what it warned about."""
    warnings = io.StringIO()
    return settings_file.load(path, warn=warnings), warnings.getvalue()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def config_file(tmp_path: Path, text: str) -> settings_file.ConfigFile:
    found, warnings = load(write(tmp_path / "config", text))
    assert warnings == ""
    return found


# -- the order, one case per level ------------------------------------------------------------------------------


FILE = "[model]\nmodel_endpoint_type = koboldcpp\nmodel_endpoint = http://127.0.0.1:5001\nmodel_wrapper = chatml\n"
STORED = {"backend": "webui", "endpoint": "http://127.0.0.1:5000", "wrapper": "zephyr-7B"}
VARIABLES = {"BACKEND_TYPE": "lmstudio", "OPENAI_API_BASE": "http://127.0.0.1:1234"}


def test_the_embedded_default_when_nothing_is_set(tmp_path):
    chosen = choose(Choices(), env=NO_VARIABLES, file=settings_file.load(tmp_path / "absent"))
    assert chosen.backend.embedded and chosen.wrapper is None and chosen.sampling == {}
    assert chosen.source("backend") == "the default"


def test_the_config_file_beats_the_default(tmp_path):
    chosen = choose(Choices(), env=NO_VARIABLES, file=config_file(tmp_path, FILE))
    assert (chosen.backend.backend, chosen.backend.endpoint, chosen.wrapper) == (
        "koboldcpp",
        "http://127.0.0.1:5001",
        "chatml",
    )
    assert chosen.origin["backend"] == "config file"
    assert chosen.source("endpoint") == f"[model] model_endpoint in {tmp_path / 'config'}, line 3"


def test_the_agents_stored_choices_beat_the_config_file(tmp_path):
    chosen = choose(Choices(), stored=STORED, env=NO_VARIABLES, file=config_file(tmp_path, FILE))
    assert (chosen.backend.backend, chosen.backend.endpoint, chosen.wrapper) == (
        "webui",
        "http://127.0.0.1:5000",
        "zephyr-7B",
    )
    assert {chosen.origin[k] for k in ("backend", "endpoint", "wrapper")} == {"agent"}


def test_the_variables_beat_the_agents_stored_choices(tmp_path):
    chosen = choose(Choices(), stored=STORED, env=VARIABLES, file=config_file(tmp_path, FILE))
    assert (chosen.backend.backend, chosen.backend.endpoint) == ("lmstudio", "http://127.0.0.1:1234")
    assert chosen.source("backend") == "BACKEND_TYPE" and chosen.source("endpoint") == "OPENAI_API_BASE"
    assert chosen.wrapper == "zephyr-7B", "no variable names a wrapper: the agent's stays"


def test_flags_beat_everything(tmp_path):
    flags = Choices(backend="llamacpp", endpoint="http://127.0.0.1:8080", wrapper="llama3")
    chosen = choose(flags, stored=STORED, env=VARIABLES, file=config_file(tmp_path, FILE))
    assert (chosen.backend.backend, chosen.backend.endpoint, chosen.wrapper) == (
        "llamacpp",
        "http://127.0.0.1:8080",
        "llama3",
    )
    assert chosen.source("backend") == "--backend"


def test_an_endpoint_is_never_paired_with_a_backend_of_another_kind(tmp_path):
    """--backend alone takes that backend's default URL, not the config file's URL for another server."""
    chosen = choose(Choices(backend="webui"), env=NO_VARIABLES, file=config_file(tmp_path, FILE))
    assert chosen.backend.backend == "webui" and chosen.backend.endpoint is None
    # ... but a level that names no backend (the port only) applies to whichever backend wins.
    chosen = choose(Choices(endpoint="http://127.0.0.1:7000"), env=NO_VARIABLES, file=config_file(tmp_path, FILE))
    assert (chosen.backend.backend, chosen.backend.endpoint) == ("koboldcpp", "http://127.0.0.1:7000")


def test_sampling_settings_are_combined_one_by_one(tmp_path):
    found = config_file(tmp_path, "[sampling]\ntemperature = 0.5\ntop_k = 20\nseed = 3\n")
    stored = {"sampling": {"top_k": 30, "min_p": 0.1}}
    chosen = choose(Choices(sampling={"seed": 9}), stored=stored, env=NO_VARIABLES, file=found)
    assert chosen.sampling == {"temperature": 0.5, "top_k": 30, "seed": 9, "min_p": 0.1}
    assert [chosen.origin[f"sampling.{n}"] for n in ("temperature", "top_k", "seed", "min_p")] == [
        "config file",
        "agent",
        "flag",
        "agent",
    ]
    assert chosen.source("sampling.temperature").endswith("config, line 2")


def test_default_sampling_settings_are_the_lowest_level(tmp_path, monkeypatch):
    """The measured defaults (one constant, per backend if need be) sit under the config file."""
    from memgpt_core import sampling

    monkeypatch.setattr(sampling, "DEFAULTS", {"top_k": 40, "min_p": 0.05})
    monkeypatch.setattr(sampling, "DEFAULTS_BY_BACKEND", {"embedded": {"temperature": 0.6}})
    found = config_file(tmp_path, "[sampling]\ntop_k = 20\n")
    chosen = choose(Choices(), env=NO_VARIABLES, file=found)
    assert chosen.sampling == {"top_k": 20, "min_p": 0.05, "temperature": 0.6}
    assert (chosen.origin["sampling.top_k"], chosen.origin["sampling.temperature"]) == ("config file", "default")
    served = choose(Choices(backend="koboldcpp"), env=NO_VARIABLES, file=found)
    assert "temperature" not in served.sampling, "the embedded server's defaults are its own"


def test_an_endpoint_without_a_backend_names_where_it_came_from(tmp_path):
    found = config_file(tmp_path, "[model]\nmodel_endpoint = http://127.0.0.1:5001\n")
    with pytest.raises(ConfigError) as caught:
        choose(Choices(), env=NO_VARIABLES, file=found)
    assert f"[model] model_endpoint in {tmp_path / 'config'}, line 2" in caught.value.message
    assert "model_endpoint_type" in caught.value.fix


def test_timeout_from_the_file_unless_the_variable_says(tmp_path):
    found = config_file(tmp_path, "[local]\ntimeout = 1200\n")
    assert resolve(env={}, file=found).timeout == 1200
    assert resolve(env={"MEMGPT_TIMEOUT": "30"}, file=found).timeout == 30


def test_a_backend_named_by_the_file_that_is_not_installed_says_so(tmp_path):
    found = config_file(tmp_path, "[model]\nmodel_endpoint_type = nosuch\n")
    settings = resolve(env={}, file=found)
    with pytest.raises(NotInstalledError) as caught, connect(settings):
        pass
    assert "no backend named 'nosuch'" in caught.value.message
    assert f"[model] model_endpoint_type in {tmp_path / 'config'}, line 2" in caught.value.message


# -- the order through real processes: the config file's server is used, a variable beats it ----------------------


def memgpt(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BACKEND_TYPE", "OPENAI_API_BASE", "MEMGPT_"))}
    return subprocess.run(
        [sys.executable, "-m", "memgpt_core", *args],
        capture_output=True,
        text=True,
        env={**clean, "MEMGPT_HOME": str(home), **(env or {})},
        timeout=300,
    )


def test_send_uses_the_config_files_server_and_a_variable_beats_it(tmp_path, llama_server):
    home = tmp_path / "home"
    home.mkdir()
    write(home / "config", f"[model]\nmodel_endpoint_type = llamacpp\nmodel_endpoint = {llama_server.url}\n")
    done = memgpt(home, "send", "--agent", "ann", "--max-tokens", "48", "--model", "chatml-grammar", "Hello!")
    assert done.returncode == 0, done.stderr
    with Store(home / "memgpt.db") as store:
        ann = store.get_agent("ann")
        assert ann is not None and "backend" not in ann.config, "the file's server is not copied into the agent"
    moved = memgpt(home, "send", "--agent", "ann", "Hi", env={"OPENAI_API_BASE": "http://127.0.0.1:9"})
    assert moved.returncode == 1 and "nothing is answering at http://127.0.0.1:9" in moved.stderr, moved.stderr


def test_an_unreachable_address_from_the_file_names_the_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write(home / "config", "[model]\nmodel_endpoint_type = llamacpp\nmodel_endpoint = http://127.0.0.1:9\n")
    done = memgpt(home, "send", "--agent", "ann", "Hello!")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"the address comes from [model] model_endpoint in {home / 'config'}, line 3" in done.stderr


def test_memgpt_config_path_overrides_the_location(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMGPT_HOME", str(tmp_path / "home"))
    assert settings_file.config_path() == tmp_path / "home" / "config"
    monkeypatch.setenv("MEMGPT_CONFIG_PATH", str(tmp_path / "elsewhere.ini"))
    assert settings_file.config_path() == tmp_path / "elsewhere.ini"
    write(tmp_path / "elsewhere.ini", "[model]\nmodel_wrapper = chatml\n")
    assert settings_file.load().wrapper == "chatml"


# -- MemGPT 0.3's own file -------------------------------------------------------------------------------------


def memgpt_style_config(path: Path, **model: str | None) -> str:
    """A config file as pymemgpt 0.3.25's ``MemGPTConfig.save`` writes it: a fresh ``configparser.ConfigParser``,
    ``set_field`` skipping None values, the numbers passed through ``str()`` (so ``None`` can be written), the
    sections in its order, ``config.write`` to the file. The values are what its ``memgpt configure`` stores for a
    local model with local embeddings."""
    llm = {
        "model": None,
        "model_endpoint": "http://localhost:8080",
        "model_endpoint_type": "llamacpp",
        "model_wrapper": "airoboros-l2-70b-2.1",
        "context_window": "8192",
    } | model
    home = str(path.parent)
    fields = [
        ("defaults", "preset", "memgpt_chat"),
        ("defaults", "persona", "sam_pov"),
        ("defaults", "human", "basic"),
        *(("model", key, value) for key, value in llm.items()),
        ("embedding", "embedding_endpoint_type", "local"),
        ("embedding", "embedding_endpoint", None),
        ("embedding", "embedding_model", "BAAI/bge-small-en-v1.5"),
        ("embedding", "embedding_dim", str(384)),
        ("embedding", "embedding_chunk_size", str(300)),
        ("archival_storage", "type", "chroma"),
        ("archival_storage", "path", os.path.join(home, "chroma")),
        ("archival_storage", "uri", None),
        ("recall_storage", "type", "sqlite"),
        ("recall_storage", "path", home),
        ("recall_storage", "uri", None),
        ("metadata_storage", "type", "sqlite"),
        ("metadata_storage", "path", home),
        ("metadata_storage", "uri", None),
        ("version", "memgpt_version", "0.3.25"),
        ("client", "anon_clientid", "00000000000000000000a0b1c2d3e4f5"),
    ]
    config = configparser.ConfigParser()
    for section, key, value in fields:
        if value is None:
            continue
        if section not in config:
            config.add_section(section)
        config.set(section, key, value)
    with open(path, "w", encoding="utf-8") as f:
        config.write(f)
    return path.read_text(encoding="utf-8")


def test_a_config_file_written_by_memgpt_is_read_as_memgpt_meant_it(tmp_path):
    text = memgpt_style_config(tmp_path / "config")
    assert text.startswith("[defaults]\npreset = memgpt_chat\npersona = sam_pov\nhuman = basic\n\n[model]\n")
    found, warnings = load(tmp_path / "config")
    assert warnings == "", "every key MemGPT writes is known (its storage keys are read and ignored)"
    assert (found.backend, found.endpoint, found.wrapper, found.context_window) == (
        "llamacpp",
        "http://localhost:8080",
        "airoboros-l2-70b-2.1",
        8192,
    )
    assert (found.persona, found.human, found.model_name) == ("sam_pov", "basic", None)
    assert found.embedding == {
        "embedding_endpoint_type": "local",
        "embedding_model": "BAAI/bge-small-en-v1.5",
        "embedding_dim": 384,
        "embedding_chunk_size": 300,
    }


def test_memgpts_ollama_model_name_and_a_none_it_wrote(tmp_path):
    memgpt_style_config(
        tmp_path / "config",
        model="dolphin2.2-mistral:7b-q6_K",
        model_endpoint="http://localhost:11434",
        model_endpoint_type="ollama",
        context_window=str(None),  # what str(None) gives when a context window was never set
    )
    found, _ = load(tmp_path / "config")
    assert (found.backend, found.model_name, found.context_window) == ("ollama", "dolphin2.2-mistral:7b-q6_K", None)
    chosen = choose(Choices(), env=NO_VARIABLES, file=found)
    assert chosen.backend.model_name == "dolphin2.2-mistral:7b-q6_K" and chosen.origin["model_name"] == "config file"


def test_a_memgpt_config_runs_an_agent_with_memgpts_default_persona_name(tmp_path, llama_server):
    """MemGPT's file names its own default persona (sam_pov), which memgpt does not ship: memgpt's is used."""
    home = tmp_path / "home"
    home.mkdir()
    memgpt_style_config(home / "config", model_endpoint=llama_server.url, model_wrapper="chatml-grammar")
    done = memgpt(home, "send", "--agent", "ann", "--max-tokens", "48", "Hello!")
    assert done.returncode == 0, done.stderr
    assert "MemGPT's default persona, 'sam_pov'" in done.stderr
    with Store(home / "memgpt.db") as store:
        ann = store.get_agent("ann")
        assert ann is not None
        from memgpt_core.agent.memory import prompt_text

        assert ann.persona == prompt_text("persona_default")


def test_a_persona_the_file_names_that_does_not_exist_names_the_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write(home / "config", "[defaults]\npersona = nobody\n")
    done = memgpt(home, "send", "--agent", "ann", "Hello!")
    assert done.returncode == 1 and "no persona named 'nobody'" in done.stderr
    assert f"[defaults] persona in {home / 'config'}, line 2" in done.stderr


# -- broken files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("model_wrapper = chatml\n", "line 1: 'model_wrapper = chatml' comes before any [section] heading"),
        ("[model]\nmodel_wrapper = chatml\njust some words\n", "line 3: 'just some words' is not a `key = value` line"),
        ("[model]\nmodel_wrapper = a\nmodel_wrapper = b\n", "line 3: model_wrapper is set a second time in [model]"),
        ("[model]\ncontext_window = 8192\n[model]\n", "line 3: the section [model] appears a second time"),
        ("[model]\ncontext_window = lots\n", "line 2: [model] context_window = 'lots' is not a whole number above 0"),
        ("[local]\ntimeout = -5\n", "line 2: [local] timeout = '-5' is not a number of seconds above 0"),
        ("[sampling]\n\ntemperature = hot\n", "line 3: temperature = 'hot' is not a number"),
        ("[sampling]\ntop_p = 1.5\n", "line 2: top_p = '1.5' is out of range"),
    ],
)
def test_a_broken_file_names_the_file_the_line_and_the_fix(tmp_path, text, said):
    path = write(tmp_path / "config", text)
    with pytest.raises(ConfigError) as caught:
        settings_file.load(path)
    assert str(path) in caught.value.message and said in caught.value.message, caught.value.message
    assert caught.value.fix


def test_bytes_that_are_not_text_are_named_by_line(tmp_path):
    path = tmp_path / "config"
    path.write_bytes(b"[model]\nmodel_wrapper = chatml\nmodel = \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        settings_file.load(path)
    assert "line 3 has bytes that are not UTF-8" in caught.value.message and "memgpt configure" in caught.value.fix


def test_a_folder_where_the_file_should_be(tmp_path):
    (tmp_path / "config").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        settings_file.load(tmp_path / "config")


def test_an_unknown_key_is_warned_about_once_and_ignored(tmp_path):
    path = write(
        tmp_path / "config", "[sampling]\ntemprature = 0.5\n[mystuff]\nx = 1\n[model]\nmodel_wrapper = chatml\n"
    )
    found, warnings = load(path)
    assert found.wrapper == "chatml" and found.sampling == {}
    assert f"{path}, line 2: unknown key temprature in [sampling]; did you mean temperature? (ignored)" in warnings
    assert "line 4: x in the unknown section [mystuff]" in warnings
    assert load(path)[1] == "", "once per process"


def test_a_broken_file_stops_a_command_with_a_sentence(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write(home / "config", "[model]\ncontext_window = lots\n")
    for args in (["send", "--agent", "ann", "hi"], ["doctor"]):
        done = memgpt(home, *args)
        assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
        assert f"{home / 'config'}, line 2" in done.stderr


# -- the model name ----------------------------------------------------------------------------------------------


def test_the_model_name_reaches_backends_that_take_one_and_only_those(monkeypatch):
    from memgpt_core import plugins

    ollama, llamacpp = plugins.get_backend("ollama"), plugins.get_backend("llamacpp")
    assert takes_model_name(ollama) and not takes_model_name(llamacpp)
    monkeypatch.delenv("MEMGPT_MODEL_NAME", raising=False)
    settings = resolve(backend="ollama", model_name="llama3.2", env={})
    assert make_backend(ollama, settings).model == "llama3.2"
    settings = resolve(backend="llamacpp", model_name="llama3.2", env={})
    assert make_backend(llamacpp, settings).endpoint == llamacpp.default_endpoint  # the base signature: no model=
    assert resolve(env={"BACKEND_TYPE": "ollama", "MEMGPT_MODEL_NAME": "qwen2.5"}).model_name == "qwen2.5"


def test_the_model_name_is_stored_with_the_agent_and_noted_where_unused(tmp_path, llama_server):
    home = tmp_path / "home"
    args = ["send", "--agent", "ann", "--backend", "llamacpp", "--endpoint", llama_server.url, "--max-tokens", "48"]
    done = memgpt(home, *args, "--model-name", "smollm2", "--model", "chatml-grammar", "Hello!")
    assert done.returncode == 0, done.stderr
    assert "--model-name smollm2 is not used: the llamacpp backend talks to the one model" in done.stderr
    with Store(home / "memgpt.db") as store:
        ann = store.get_agent("ann")
        assert ann is not None and ann.config["model_name"] == "smollm2"


# -- docs/settings.md says what the code does ----------------------------------------------------------------------


def _table_after(text: str, heading_row_start: str) -> list[list[str]]:
    lines = text[text.index(heading_row_start) :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def test_settings_md_lists_every_key_and_each_servers_sampling_names():
    from memgpt_core import sampling

    text = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text(encoding="utf-8")
    for key in settings_file.KEYS:
        if key.kind != "ignored":
            assert f"`{key.name}`" in text, key.name
    dialects = ["llama.cpp", "koboldcpp", "webui", "ollama", "lmstudio", "vllm", "openai"]
    rows = _table_after(text, "| setting | llama.cpp (`llamacpp`)")
    assert [row[0] for row in rows] == [s.name for s in sampling.SETTINGS]
    for row in rows:
        for dialect, cell in zip(dialects, row[1:], strict=True):
            assert (sampling.DIALECTS[dialect][row[0]] or "—") == cell, (row[0], dialect)
    flags = _table_after(text, "| setting | flag | range | meaning |")
    for setting, row in zip(sampling.SETTINGS, flags, strict=True):
        assert row[0] == setting.name and row[1].startswith(setting.flag), row


def test_the_run_header_names_the_agents_default_sampling_and_the_users_own(tmp_path: Path) -> None:
    from memgpt_core.cli.run_cmd import _settings_line

    nothing = _settings_line(choose(Choices(), env=NO_VARIABLES, file=settings_file.load(tmp_path / "absent")))
    assert "dry_multiplier 0.8" in nothing and "(memgpt's default)" in nothing
    assert "the server's defaults" not in nothing, "the agent sends DRY, so the line must not claim nothing is sent"
    own = _settings_line(
        choose(Choices(sampling={"dry_multiplier": 0.0}), env=NO_VARIABLES, file=settings_file.load(tmp_path / "x"))
    )
    assert "dry_multiplier 0" in own and "(flag)" in own
    assert "dry_multiplier 0.8" not in own, "the user's setting replaces the default, it is not listed beside it"
