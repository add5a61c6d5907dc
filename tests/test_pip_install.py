"""Real pip installs in a new virtual environment: plugins appear and disappear with their distributions.

One environment per module (memgpt-core installed once); each test installs what it needs and uninstalls it again.
Sources are copied to a temporary folder first, so that setuptools' ``build/`` folders never land in the work tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "plugin_fixtures"))
from venvs import Venv, core_venv

pytestmark = pytest.mark.pip  # every test here installs with pip into a new virtual environment

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "plugin_fixtures"
COMMUNITY = Path(__file__).resolve().parent / "community_wrapper"
MEMGPT_STYLE = Path(__file__).resolve().parent / "memgpt_style_wrappers"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return core_venv(tmp_path_factory.mktemp("pip-install"))


def test_core_alone_lists_no_plugins(venv: Venv) -> None:
    assert venv.listed() == []
    assert "No plugins installed" in venv.run(venv.memgpt, "plugins", "list").stdout


def test_pip_install_of_one_backend_plugin_shows_that_plugin_and_its_wrappers(venv: Venv) -> None:
    installed = venv.install_plugin(ROOT / "plugins" / "memgpt_backend_koboldcpp")
    try:
        assert installed == ["memgpt-backend-koboldcpp", "memgpt-wrappers-airoboros"]
        listed = {p["name"]: p for p in venv.listed()}
        assert sorted(listed) == installed
        assert listed["memgpt-backend-koboldcpp"]["backends"] == ["koboldcpp"]
        assert all(p["error"] is None for p in listed.values())
        table = venv.run(venv.memgpt, "plugins", "list").stdout
        assert "memgpt-backend-koboldcpp" in table and "backends: koboldcpp" in table
    finally:
        venv.pip("uninstall", "-y", *installed)
    assert venv.listed() == []


def test_a_plugin_that_raises_on_import_is_shown_broken_and_everything_else_works(venv: Venv) -> None:
    venv.install(venv.source(FIXTURES / "broken_plugin"))
    koboldcpp = venv.install_plugin(ROOT / "plugins" / "memgpt_backend_koboldcpp")
    try:
        listed = {p["name"]: p for p in venv.listed()}
        assert sorted(listed) == sorted(["memgpt-broken-plugin", *koboldcpp])
        assert listed["memgpt-broken-plugin"]["error"] == (
            "could not be loaded: RuntimeError: memgpt-broken-plugin fails on import on purpose"
        )
        assert listed["memgpt-backend-koboldcpp"]["error"] is None

        table = venv.run(venv.memgpt, "plugins", "list")
        broken = next(line for line in table.stdout.splitlines() if line.startswith("memgpt-broken-plugin"))
        assert broken.split()[1:3] == ["0.0.1", "broken"]
        assert "second line" not in table.stdout and "Traceback" not in table.stderr

        help_text = venv.run(venv.memgpt, "--help")
        assert "plugins" in help_text.stdout and "Traceback" not in help_text.stderr
        venv.run(venv.memgpt, "--version")
        venv.run(venv.memgpt, "plugins", "--help")
    finally:
        venv.pip("uninstall", "-y", "memgpt-broken-plugin", *koboldcpp)


def test_community_wrapper_installs_with_plugins_install_and_is_usable_by_name(venv: Venv) -> None:
    """A third-party wrapper package: `memgpt plugins install` adds it, core finds it by name, its own tests pass."""
    package = venv.source(COMMUNITY)
    venv.run(venv.memgpt, "plugins", "install", package)
    try:
        listed = venv.listed()
        assert [(p["name"], p["wrappers"], p["error"]) for p in listed] == [
            ("memgpt-community-alpaca", ["community-alpaca"], None)
        ]
        use = venv.run(
            venv.python,
            "-c",
            "from memgpt_core import plugins\n"
            "w = plugins.get_wrapper('community-alpaca')\n"
            "print(w.module, w.distribution)\n"
            "prompt = w.prompt([{'role': 'user', 'content': 'hello'}], [])\n"
            "print(prompt.splitlines()[-1])\n",
        )
        assert use.stdout.splitlines() == ["memgpt_community_alpaca memgpt-community-alpaca", "### Response:"]

        # The package's own tests: the conformance kit in a few lines, run where the package is installed.
        tests = venv.run(venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{package}/tests")
        assert " passed" in tests.stdout and "skipped" not in tests.stdout and "failed" not in tests.stdout
    finally:
        venv.run(venv.memgpt, "plugins", "uninstall", "-y", "memgpt-community-alpaca")
    assert venv.listed() == []


def test_plugins_install_passes_on_pips_failure(venv: Venv, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-plugin"
    done = venv.run(venv.memgpt, "plugins", "install", str(missing), check=False)
    assert done.returncode != 0
    assert "no-such-plugin" in done.stderr + done.stdout
    assert venv.listed() == []


def _send(venv: Venv, home: Path, agent: str, message: str, *options: str) -> subprocess.CompletedProcess[str]:
    return venv.run(
        venv.memgpt, "send", "--agent", agent, *options, message, check=False, env={"MEMGPT_HOME": str(home)}
    )


def _messages(venv: Venv, home: Path) -> dict[str, int]:
    listed = venv.run(venv.memgpt, "agents", "list", "--json", env={"MEMGPT_HOME": str(home)})
    return {agent["name"]: agent["messages"] for agent in json.loads(listed.stdout)}


@pytest.mark.server
def test_wrappers_written_for_memgpt_work_once_registered(venv: Venv, llama_server, tmp_path: Path) -> None:
    """MemGPT 0.3-style wrapper classes, unchanged, registered by a small package (plain and -grammar variants
    made with constructor arguments, as MemGPT made them): listed, conformant, and several real turns each."""
    package = venv.source(MEMGPT_STYLE)
    venv.install(package)
    llamacpp = venv.install_plugin(ROOT / "plugins" / "memgpt_backend_llamacpp")
    try:
        listed = {p["name"]: p for p in venv.listed()}
        assert listed["memgpt-style-wrappers"]["error"] is None
        assert listed["memgpt-style-wrappers"]["wrappers"] == [
            "memgpt-airoboros",
            "memgpt-airoboros-grammar",
            "memgpt-chatml",
            "memgpt-chatml-grammar",
            "memgpt-zephyr",
            "memgpt-zephyr-grammar",
        ]
        # The package's own tests, the conformance kit among them, where the package is installed.
        tests = venv.run(venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{package}/tests")
        assert " passed" in tests.stdout and "failed" not in tests.stdout, tests.stdout

        server = ("--backend", "llamacpp", "--endpoint", llama_server.url, "--max-tokens", "256")
        for name in ("memgpt-chatml-grammar", "memgpt-airoboros-grammar"):
            for message in ("hi, I'm Ada", "I like tea", "what do I like?"):
                done = _send(venv, tmp_path, f"agent-{name}", message, *server, "--model", name, "--json")
                events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
                assert done.returncode == 0 and "Traceback" not in done.stderr, (done.stdout, done.stderr)
                assert [e for e in events if e["type"] == "error"] == []
                assert any(e["type"] == "function_call" for e in events), events
        assert all(count >= 6 for count in _messages(venv, tmp_path).values())
    finally:
        venv.pip("uninstall", "-y", "memgpt-style-wrappers", *llamacpp)


@pytest.mark.server
def test_a_plugin_that_fails_while_in_use_ends_the_step_with_one_line(venv: Venv, llama_server, tmp_path: Path) -> None:
    """A backend, a wrapper (building the prompt, reading the answer) and a grammar provider that raise while the agent
    uses them: the step ends with one line naming the plugin, its distribution and the fix; nothing is saved."""
    venv.install(venv.source(FIXTURES / "faulty_plugin"), venv.source(MEMGPT_STYLE))
    llamacpp = venv.install_plugin(ROOT / "plugins" / "memgpt_backend_llamacpp")
    server = ("--backend", "llamacpp", "--endpoint", llama_server.url, "--max-tokens", "64")
    try:
        kept = _send(venv, tmp_path, "kept", "hi", *server, "--model", "memgpt-chatml-grammar")
        assert kept.returncode == 0, kept.stderr
        before = _messages(venv, tmp_path)["kept"]
        cases = [
            (
                ("--backend", "faulty", "--model", "memgpt-chatml"),
                "the faulty backend from memgpt-faulty-plugin failed while completing: ZeroDivisionError",
            ),
            (
                (*server, "--model", "faulty-prompt"),
                "the faulty-prompt wrapper from memgpt-faulty-plugin failed while building the prompt: RuntimeError: "
                "faulty-prompt cannot build prompts, on purpose",
            ),
            (
                (*server, "--model", "faulty-grammar-user"),
                "the faulty-grammar grammar provider from memgpt-faulty-plugin failed while building a grammar: "
                "KeyError: 'grammar-gbnf'",
            ),
            (
                (*server, "--model", "faulty-parse"),
                "the faulty-parse wrapper from memgpt-faulty-plugin could not read it (ValueError: faulty-parse "
                "cannot read answers, on purpose)",
            ),
        ]
        for options, expected in cases:
            done = _send(venv, tmp_path, "kept", "are you there?", *options)
            assert done.returncode == 1, done.stdout
            assert "Traceback" not in done.stderr, done.stderr
            error = done.stderr.strip().splitlines()
            assert expected in error[0], done.stderr
            assert any(line.strip().startswith("fix:") for line in error), done.stderr
            assert _messages(venv, tmp_path)["kept"] == before, f"{options}: the failed step saved something"
    finally:
        venv.pip("uninstall", "-y", "memgpt-faulty-plugin", "memgpt-style-wrappers", *llamacpp)
