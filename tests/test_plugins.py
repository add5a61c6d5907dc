"""The plugin host: every hook works from a plugin, and a broken, duplicate or misspelled plugin is contained."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from memgpt_core import plugins
from memgpt_core.agent.testing import GrammarScriptedBackend, call_text, make_agent
from memgpt_core.backend import Backend
from memgpt_core.cli import cli
from memgpt_core.errors import DuplicateNameError, NotInstalledError, PluginError, PluginFailedError
from memgpt_core.testing import GrammarConformance

sys.path.insert(0, str(Path(__file__).parent / "plugin_fixtures"))
from fake_dist import make_distribution

BACKEND_PLUGIN = """
    from memgpt_core import hookimpl
    from memgpt_core.backend import Backend, Capabilities

    class EchoBackend(Backend):
        name = "echo"
        default_endpoint = "http://127.0.0.1:7001"
        capabilities = Capabilities(grammar_formats=frozenset({"gbnf"}))

        def complete(self, request):
            raise NotImplementedError

    @hookimpl
    def register_backends(register):
        register(EchoBackend, aliases=("echo-alias",))
"""

WRAPPER_PLUGIN = """
    from memgpt_core import hookimpl

    class PlainWrapper:  # MemGPT's shape, no base class of ours
        def chat_completion_to_prompt(self, messages, functions, first_message=False):
            return "PROMPT " + " | ".join(m["content"] for m in messages)

        def output_to_chat_completion_response(self, raw_llm_output):
            return {"role": "assistant", "content": None,
                    "function_call": {"name": "send_message", "arguments": raw_llm_output}}

    @hookimpl
    def register_wrappers(register):
        register(PlainWrapper, name="plain")
"""

GRAMMAR_PLUGIN = """
    from memgpt_core import hookimpl
    from memgpt_core.grammar import GrammarProvider

    class YesNo(GrammarProvider):
        name = "yes-no"
        formats = frozenset({"gbnf"})

        def __init__(self):
            self.built = 0

        def build(
            self, functions, *, format, inner_thoughts_in_params=True, max_string_length=None, max_tokens=None
        ):
            self.built += 1
            return 'root ::= "yes" | "no"'

    @hookimpl
    def register_grammars(register):
        register(YesNo)
"""

BUGGY_GRAMMAR_PLUGIN = """
    from memgpt_core import hookimpl
    from memgpt_core.grammar import GrammarProvider
    from memgpt_wrappers_chatml.wrappers import ChatMLGrammarWrapper

    class Buggy(GrammarProvider):
        name = "buggy"
        formats = frozenset({"gbnf"})

        def build(self, functions, *, format, inner_thoughts_in_params=True, max_string_length=None, max_tokens=None):
            return functions[0]["parameters"]["no-such-key"]

    class BuggyWrapper(ChatMLGrammarWrapper):
        name = "chatml-buggy"
        grammar = "buggy"

    @hookimpl
    def register_grammars(register):
        register(Buggy)

    @hookimpl
    def register_wrappers(register):
        register(BuggyWrapper)
"""

COMMAND_PLUGIN = """
    import click
    from memgpt_core import hookimpl

    @hookimpl
    def register_commands(cli):
        @cli.command()
        @click.argument("who")
        def greet(who):
            "Say hello (from a plugin)."
            click.echo(f"hello {who} from a plugin")
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh folder of installed distributions on sys.path; only the ones a test makes are loaded."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    made: list[str] = []
    modules: list[str] = []

    def install(dist: str, source: str, **kwargs) -> str:
        module = make_distribution(root, dist, source, **kwargs)
        made.append(dist)
        modules.append(module)
        monkeypatch.setenv("MEMGPT_LOAD_PLUGINS", ",".join(made))
        monkeypatch.delenv("MEMGPT_STRICT_PLUGINS", raising=False)
        plugins.reset()
        return module

    yield install
    for module in modules:
        sys.modules.pop(module, None)
    plugins.reset()


def by_name(name: str) -> plugins.PluginInfo:
    return {p.name: p for p in plugins.get_plugins()}[name]


# -- each hook, from a plugin ---------------------------------------------------------------------------------------


def test_register_backends_hook(site) -> None:
    site("memgpt-echo", BACKEND_PLUGIN)
    backend_class = plugins.get_backend("echo")
    assert issubclass(backend_class, Backend)
    assert plugins.get_backend("echo-alias") is backend_class
    assert backend_class().endpoint == "http://127.0.0.1:7001"
    assert plugins.plugin_of("backends", "echo") == "memgpt-echo"
    info = by_name("memgpt-echo")
    assert (info.version, info.hooks, info.error) == ("1.0", ["register_backends"], None)
    assert sorted(info.backends) == ["echo", "echo-alias"]


def test_register_wrappers_hook_accepts_a_plain_memgpt_style_class(site) -> None:
    site("memgpt-plain", WRAPPER_PLUGIN)
    wrapper = plugins.get_wrapper("plain")
    assert wrapper is not plugins.get_wrapper("plain"), "get_wrapper gives a fresh, ready instance"
    prompt = wrapper.prompt([{"role": "system", "content": "hi"}], [])
    assert prompt == "PROMPT hi"
    assert wrapper.parse("{}", []).name == "send_message"
    assert by_name("memgpt-plain").wrappers == ["plain"]


def test_register_grammars_hook_gives_one_shared_provider(site) -> None:
    site("memgpt-yesno", GRAMMAR_PLUGIN)
    provider = plugins.get_grammar("yes-no")
    assert provider.build([], format="gbnf") == 'root ::= "yes" | "no"'
    assert plugins.get_grammar("yes-no") is provider
    assert provider.built == 1
    assert "yes-no" in plugins.get_grammars()
    assert "function-call" in plugins.get_grammars(), "the built-in provider registers through the same hook"


def test_a_grammar_provider_that_raises_ends_the_step_with_one_line_naming_it(site, store) -> None:
    site("memgpt-buggy", BUGGY_GRAMMAR_PLUGIN)
    backend = GrammarScriptedBackend([call_text("send_message", "greet", message="Hello!")])
    agent = make_agent(store, backend, plugins.get_wrapper("chatml-buggy"))
    before = (agent.record.context, store.count_messages(agent.record.id))
    with pytest.raises(PluginFailedError) as caught:
        agent.user_message("hi")
    assert str(caught.value).splitlines()[0] == (
        "the buggy grammar provider from memgpt-buggy failed while building a grammar: KeyError: 'no-such-key'; "
        "nothing was saved from this step"
    )
    assert "memgpt-buggy" in caught.value.fix
    assert backend.requests == [], "no completion was asked for"
    assert (agent.record.context, store.count_messages(agent.record.id)) == before


def test_register_commands_hook_adds_a_working_command(site) -> None:
    site("memgpt-greet", COMMAND_PLUGIN)
    result = CliRunner().invoke(cli, ["greet", "Ada"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello Ada from a plugin\n"
    help_text = CliRunner().invoke(cli, ["--help"]).output
    assert "greet" in help_text and "Say hello" in help_text
    listed = CliRunner().invoke(cli, ["plugins", "list", "--json"])
    assert json.loads(listed.output)[0]["commands"] == ["greet"]


def test_a_hook_may_leave_out_its_argument(site) -> None:
    site("memgpt-quiet", "from memgpt_core import hookimpl\n\n@hookimpl\ndef register_backends():\n    pass\n")
    assert by_name("memgpt-quiet").error is None


# -- containment ----------------------------------------------------------------------------------------------------


def test_a_plugin_that_fails_on_import_is_recorded_and_the_others_still_load(site) -> None:
    site("memgpt-aaa-broken", "raise ImportError('needs libfoo\\nmore detail')\n")
    site("memgpt-echo", BACKEND_PLUGIN)
    broken = by_name("memgpt-aaa-broken")
    assert broken.status == "broken"
    assert broken.error == "could not be loaded: ImportError: needs libfoo"
    assert "echo" in plugins.get_backends()


def test_sys_exit_in_a_plugin_does_not_end_memgpt(site) -> None:
    site("memgpt-quitter", "import sys\nsys.exit(3)\n")
    assert by_name("memgpt-quitter").error == "could not be loaded: SystemExit: 3"


def test_a_plugin_that_fails_while_registering_is_withdrawn_entirely(site) -> None:
    site(
        "memgpt-half",
        BACKEND_PLUGIN
        + """
    @hookimpl
    def register_wrappers(register):
        raise ValueError("wrapper table is corrupt")
""",
    )
    assert plugins.get_backends()["echo"]  # collected before the wrapper hook fails
    plugins.get_wrappers()
    info = by_name("memgpt-half")
    assert info.error == "failed in register_wrappers: ValueError: wrapper table is corrupt"
    assert "echo" not in plugins.get_backends(), "a broken plugin's other registrations are withdrawn"
    with pytest.raises(NotInstalledError, match=r"broken plugins .*memgpt-half"):
        plugins.get_backend("echo")


def test_duplicate_name_is_refused_naming_both_distributions(site) -> None:
    site("memgpt-echo", BACKEND_PLUGIN)
    site("memgpt-echo-copy", BACKEND_PLUGIN, module="memgpt_fixture_echo_copy")
    assert plugins.plugin_of("backends", "echo") == "memgpt-echo"
    error = by_name("memgpt-echo-copy").error
    assert "registered by both memgpt-echo and memgpt-echo-copy" in error
    assert "\n" not in error


def test_misspelled_hook_is_refused(site) -> None:
    site("memgpt-typo", "from memgpt_core import hookimpl\n\n@hookimpl\ndef register_backend(register):\n    pass\n")
    error = by_name("memgpt-typo").error
    assert error.startswith("implements a hook that does not exist")
    assert "register_backend" in error


def test_registering_something_that_is_not_a_backend_is_refused(site) -> None:
    site(
        "memgpt-wrong",
        "from memgpt_core import hookimpl\n\nclass NotABackend:\n    name = 'nab'\n\n"
        "@hookimpl\ndef register_backends(register):\n    register(NotABackend)\n",
    )
    assert "does not subclass memgpt_core.backend.Backend" in by_name("memgpt-wrong").error
    assert "nab" not in plugins.get_backends()


def test_a_plugin_command_cannot_replace_a_built_in(site) -> None:
    site(
        "memgpt-hijack",
        "import click\nfrom memgpt_core import hookimpl\n\n@hookimpl\ndef register_commands(cli):\n"
        "    @cli.command()\n    def run():\n        click.echo('hijacked')\n",
    )
    result = CliRunner().invoke(cli, ["plugins", "list"])
    assert result.exit_code == 0
    assert "run (built into memgpt)" in by_name("memgpt-hijack").error
    assert "hijacked" not in CliRunner().invoke(cli, ["run", "--help"]).output


def test_unknown_name_says_what_is_installed(site) -> None:
    site("memgpt-echo", BACKEND_PLUGIN)
    with pytest.raises(NotInstalledError) as caught:
        plugins.get_backend("kobold")
    assert "no backend named 'kobold'" in str(caught.value)
    assert "echo" in str(caught.value)


# -- selection and strictness ---------------------------------------------------------------------------------------


def test_load_plugins_selects_distributions(site, monkeypatch: pytest.MonkeyPatch) -> None:
    site("memgpt-echo", BACKEND_PLUGIN)
    site("memgpt-plain", WRAPPER_PLUGIN)
    monkeypatch.setenv("MEMGPT_LOAD_PLUGINS", "memgpt_plain")  # names compare as pip does: _ and - alike
    plugins.reset()
    assert [p.name for p in plugins.get_plugins()] == ["memgpt-plain"]


def test_empty_load_plugins_loads_none_but_the_built_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMGPT_LOAD_PLUGINS", "")
    plugins.reset()
    try:
        assert plugins.get_plugins() == []
        assert plugins.get_backends() == {}
        assert [p.name for p in plugins.get_plugins(include_builtins=True)] == ["memgpt_core.default_plugins.grammars"]
    finally:
        plugins.reset()


def test_strict_mode_re_raises_the_plugins_own_error(site, monkeypatch: pytest.MonkeyPatch) -> None:
    site("memgpt-aaa-broken", "raise ImportError('needs libfoo')\n")
    monkeypatch.setenv("MEMGPT_STRICT_PLUGINS", "1")
    plugins.reset()
    with pytest.raises(ImportError, match="needs libfoo"):
        plugins.get_backends()


def test_strict_mode_re_raises_a_duplicate(site, monkeypatch: pytest.MonkeyPatch) -> None:
    site("memgpt-echo", BACKEND_PLUGIN)
    site("memgpt-echo-copy", BACKEND_PLUGIN, module="memgpt_fixture_echo_copy")
    monkeypatch.setenv("MEMGPT_STRICT_PLUGINS", "1")
    plugins.reset()
    with pytest.raises(DuplicateNameError):
        plugins.get_backends()
    assert issubclass(DuplicateNameError, PluginError)


# -- start-up stays light -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["plugins", "list"]])
def test_start_up_imports_nothing_heavy(args: list[str]) -> None:
    """With every installed plugin loaded, neither command imports pydantic, requests or memgpt_core.models."""
    plugins.reset()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "memgpt_core", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "memgpt_core.plugins" in imported or args == ["--help"]
    heavy = sorted(m for m in imported if m.split(".")[0] in ("pydantic", "requests") or m == "memgpt_core.models")
    assert heavy == [], f"`memgpt {' '.join(args)}` imports {heavy}"


def test_the_kit_fails_a_wrapper_that_breaks_the_contract(tmp_path: Path) -> None:
    """The conformance kit can fail: a wrapper that drops function returns and accepts garbage is caught."""
    (tmp_path / "test_bad.py").write_text(
        "import json\nfrom memgpt_core.testing import WrapperConformance\n\n"
        "class Sloppy:\n    stop_sequences = ('###',)\n"
        "    def chat_completion_to_prompt(self, messages, functions, first_message=False):\n"
        "        return ' '.join(m['content'] for m in messages if m['role'] != 'function')"
        " + json.dumps(functions)\n"
        "    def output_to_chat_completion_response(self, raw):\n"
        "        return {'role': 'assistant', 'content': None,"
        " 'function_call': {'name': 'send_message', 'arguments': '{\"message\": \"hi\"}'}}\n\n"
        "class TestSloppy(WrapperConformance):\n    wrapper_class = Sloppy\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    failed = "\n".join(line for line in done.stdout.splitlines() if line.startswith("FAILED "))
    for expected in (
        "::test_prompt_renders_the_function_return",
        "::test_well_formed_calls_round_trip",
        "::test_garbage_raises_parse_error[}{ ::: ]]] ;; ((]",
    ):
        assert expected in failed, done.stdout
    assert "::test_prompt_renders_the_system_message" not in failed


def test_entry_point_scan_agrees_with_importlib_metadata(site) -> None:
    """plugins.py reads dist-info folders itself, for start-up speed; it must find what importlib-metadata finds."""
    from importlib_metadata import entry_points

    site("memgpt-echo", BACKEND_PLUGIN, version="3.1.4")
    site("memgpt-plain", WRAPPER_PLUGIN)
    expected = sorted((ep.dist.name, ep.dist.version, ep.name, ep.value) for ep in entry_points(group="memgpt"))
    found = sorted((ep.dist_name, ep.version, ep.name, ep.value) for ep in plugins._entry_points())
    assert found == expected
    assert ("memgpt-echo", "3.1.4", "echo", "memgpt_fixture_memgpt_echo") in found


# -- the conformance kit, run against every installed grammar provider -----------------------------------


def _kit_class(base: type, name: str, **attrs) -> type:
    safe = re.sub(r"\W", "_", name)
    return type(f"Test{base.__name__}_{safe}", (base,), attrs)


# The wrapper packages run WrapperConformance on each of their names in their own tests, and each backend package runs
# BackendConformance; grammar providers are checked here.
plugins.reset()
for _name, _provider in sorted(plugins.get_grammars().items()):
    _cls = _kit_class(GrammarConformance, _name, grammar_class=_provider)
    globals()[_cls.__name__] = _cls
plugins.reset()


def test_a_wrapper_that_cannot_be_created_is_reported_with_its_plugin(site) -> None:
    site(
        "memgpt-fragile",
        "from memgpt_core import hookimpl\n\nclass Fragile:\n    name = 'fragile'\n"
        "    def __init__(self):\n        raise KeyError('template')\n"
        "    def chat_completion_to_prompt(self, messages, functions, first_message=False):\n        return ''\n"
        "    def output_to_chat_completion_response(self, raw_llm_output):\n        return {}\n\n"
        "@hookimpl\ndef register_wrappers(register):\n    register(Fragile)\n",
    )
    with pytest.raises(PluginError, match="the wrapper 'fragile' from memgpt-fragile could not be created: KeyError"):
        plugins.get_wrapper("fragile")
