"""``memgpt plugins list``: the sorted table, ``--json``, ``--all``, and broken plugins shown without failing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "plugin_fixtures"))
from fake_dist import make_distribution

WRAPPER = """
    from memgpt_core import hookimpl

    class Zed:
        name = "zed"
        def chat_completion_to_prompt(self, messages, functions, first_message=False):
            return ""
        def output_to_chat_completion_response(self, raw_llm_output):
            return {}

    @hookimpl
    def register_wrappers(register):
        register(Zed)
"""

BACKEND_AND_COMMAND = """
    import click
    from memgpt_core import hookimpl
    from memgpt_core.backend import Backend

    class Alpha(Backend):
        name = "alpha"
        default_endpoint = "http://127.0.0.1:7002"
        def complete(self, request):
            raise NotImplementedError

    @hookimpl
    def register_backends(register):
        register(Alpha)

    @hookimpl
    def register_commands(cli):
        @cli.command()
        def alpha_info():
            "Show alpha."
            click.echo("alpha")
"""

BROKEN = "raise RuntimeError('cannot find libalpha.so\\nTraceback detail nobody needs')\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    make_distribution(root, "memgpt-zed-wrapper", WRAPPER, version="2.0")
    make_distribution(root, "memgpt-alpha", BACKEND_AND_COMMAND, version="0.3")
    make_distribution(root, "memgpt-broken", BROKEN, version="0.1")
    return root


def memgpt(
    site: Path, *args: str, load: str | None = "memgpt-zed-wrapper,memgpt-alpha,memgpt-broken", home: Path | None = None
):
    env = {**os.environ, "PYTHONPATH": str(site)}
    if home is not None:
        env["MEMGPT_HOME"] = str(home)
    env.pop("MEMGPT_STRICT_PLUGINS", None)
    if load is None:
        env.pop("MEMGPT_LOAD_PLUGINS", None)
    else:
        env["MEMGPT_LOAD_PLUGINS"] = load
    return subprocess.run(
        [sys.executable, "-m", "memgpt_core", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_table_is_sorted_and_shows_what_each_plugin_registers(site: Path) -> None:
    done = memgpt(site, "plugins", "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["distribution", "version", "status", "registers"]
    assert [line.split()[0] for line in lines[1:]] == ["memgpt-alpha", "memgpt-broken", "memgpt-zed-wrapper"]
    alpha, _, zed = lines[1:]
    assert alpha.split()[1:3] == ["0.3", "ok"]
    assert alpha.endswith("backends: alpha; commands: alpha-info")
    assert zed.split()[1:3] == ["2.0", "ok"] and zed.endswith("wrappers: zed")


def test_broken_plugin_shows_its_one_line_error_and_exit_status_stays_0(site: Path) -> None:
    done = memgpt(site, "plugins", "list")
    assert done.returncode == 0
    broken = next(line for line in done.stdout.splitlines() if line.startswith("memgpt-broken"))
    assert broken.split()[1:3] == ["0.1", "broken"]
    assert broken.endswith("could not be loaded: RuntimeError: cannot find libalpha.so")
    assert "Traceback" not in done.stdout + done.stderr


def test_json_is_a_sorted_list_with_the_documented_keys(site: Path) -> None:
    done = memgpt(site, "plugins", "list", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [p["name"] for p in found] == ["memgpt-alpha", "memgpt-broken", "memgpt-zed-wrapper"]
    for plugin in found:
        assert set(plugin) == {"name", "version", "hooks", "backends", "wrappers", "grammars", "commands", "error"}
    alpha, broken, zed = found
    assert alpha == {
        "name": "memgpt-alpha",
        "version": "0.3",
        "hooks": ["register_backends", "register_commands"],
        "backends": ["alpha"],
        "wrappers": [],
        "grammars": [],
        "commands": ["alpha-info"],
        "error": None,
    }
    assert broken["error"] == "could not be loaded: RuntimeError: cannot find libalpha.so"
    assert broken["hooks"] == [] and broken["backends"] == []
    assert zed["wrappers"] == ["zed"] and zed["error"] is None


def test_all_adds_the_built_ins(site: Path) -> None:
    names = [p["name"] for p in json.loads(memgpt(site, "plugins", "list", "--json", "--all").stdout)]
    assert "memgpt_core.default_plugins.grammars" in names
    assert names == sorted(names, key=str.lower)
    table = memgpt(site, "plugins", "list", "--all").stdout
    assert "memgpt_core.default_plugins.grammars  built-in  ok      grammars: function-call" in table


def test_every_other_command_still_works_with_a_broken_plugin(site: Path) -> None:
    help_text = memgpt(site, "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "alpha-info" in help_text.stdout and "plugins" in help_text.stdout
    assert memgpt(site, "alpha-info").stdout == "alpha\n"
    assert memgpt(site, "--version").returncode == 0


def test_no_plugins_selected_lists_nothing(site: Path) -> None:
    done = memgpt(site, "plugins", "list", load="")
    assert done.returncode == 0
    assert "No plugins loaded" in done.stdout
    assert json.loads(memgpt(site, "plugins", "list", "--json", load="").stdout) == []


def test_strict_mode_shows_the_plugin_authors_traceback(site: Path) -> None:
    env_load = "memgpt-broken"
    env = {**os.environ, "PYTHONPATH": str(site), "MEMGPT_LOAD_PLUGINS": env_load, "MEMGPT_STRICT_PLUGINS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "memgpt_core", "plugins", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode != 0
    assert "RuntimeError: cannot find libalpha.so" in done.stderr
    assert "memgpt_fixture_memgpt_broken.py" in done.stderr, "the traceback points into the plugin"


def test_load_plugins_says_what_it_leaves_out_and_what_it_cannot_find(site: Path) -> None:
    done = memgpt(site, "plugins", "list", load="memgpt-alpha,memgpt-alhpa")
    assert done.returncode == 0
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["memgpt-alpha"]
    left_out = next(line for line in done.stderr.splitlines() if line.startswith("MEMGPT_LOAD_PLUGINS leaves out: "))
    assert {"memgpt-broken", "memgpt-zed-wrapper"} <= set(left_out.split(": ", 1)[1].split(", "))
    assert "memgpt-alpha" not in left_out
    assert "not installed: memgpt-alhpa" in done.stderr
    nothing = memgpt(site, "plugins", "list", load="")
    assert "No plugins loaded" in nothing.stdout


def _error(done: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The one-line error of a failed command, and its fix line."""
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    return lines[0], next(line.strip() for line in lines if line.strip().startswith("fix:"))


def test_a_missing_wrapper_of_ours_names_its_distribution_and_how_to_install_it(site: Path, tmp_path: Path) -> None:
    # memgpt-alpha's backend takes no grammar, so its default is the plain Airoboros wrapper, which is not loaded.
    done = memgpt(site, "send", "--agent", "a", "--backend", "alpha", "hi", load="memgpt-alpha", home=tmp_path)
    error, fix = _error(done)
    assert error.endswith(
        "no wrapper named 'airoboros-l2-70b-2.1' is installed; it comes with memgpt-wrappers-airoboros"
    )
    assert fix == (
        "fix: install memgpt-wrappers-airoboros: in a checkout of memgpt, run `make dist`, then "
        "`memgpt plugins install --find-links dist memgpt-wrappers-airoboros`; installed wrappers: none"
    )


def test_a_missing_backend_of_ours_names_its_distribution(site: Path, tmp_path: Path) -> None:
    done = memgpt(site, "send", "--agent", "a", "--backend", "koboldcpp", "hi", load="memgpt-alpha", home=tmp_path)
    error, fix = _error(done)
    assert error.endswith("no backend named 'koboldcpp' is installed; it comes with memgpt-backend-koboldcpp")
    assert "`memgpt plugins install --find-links dist memgpt-backend-koboldcpp`" in fix
    assert fix.endswith("installed backends: alpha")


def test_a_name_that_is_not_ours_only_lists_what_is_installed(site: Path, tmp_path: Path) -> None:
    done = memgpt(site, "send", "--agent", "a", "--backend", "alpha", "--model", "alpaca", "hi", home=tmp_path)
    error, fix = _error(done)
    assert error.endswith("no wrapper named 'alpaca' is installed")
    assert fix == "fix: installed wrappers: zed; broken plugins (see `memgpt plugins list`): memgpt-broken"


def test_plugins_install_refuses_a_find_links_folder_that_is_not_there(site: Path, tmp_path: Path) -> None:
    missing = tmp_path / "dist"
    done = memgpt(site, "plugins", "install", "--find-links", str(missing), "memgpt-backend-webui")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"--find-links {missing}: there is no folder {missing}" in done.stderr
    assert "run `make dist` in your checkout of memgpt" in done.stderr
