"""The documentation's promises, checked against the code.

- docs/plugins.md: every code example is cut out of the page, packaged, installed with pip into a new virtual
  environment holding memgpt-core from this checkout, listed by ``memgpt plugins list --json`` and used.
- docs/backends.md: the defaults table (default URL, grammar formats, default wrapper) agrees with the backends.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "plugin_fixtures"))
from venvs import Venv, core_venv

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_MD = ROOT / "docs" / "plugins.md"
BACKENDS_MD = ROOT / "docs" / "backends.md"

# -- reading the markdown ----------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, text) of each fenced code block of a markdown page, in page order."""
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(path.read_text(encoding="utf-8"))]


def block(blocks: list[tuple[str, str]], language: str, marker: str) -> str:
    """The one block in ``language`` that contains ``marker``."""
    found = [text for lang, text in blocks if lang == language and marker in text]
    assert len(found) == 1, (
        f"expected one {language} block containing {marker!r} in {PLUGINS_MD.name}, got {len(found)}"
    )
    return found[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return core_venv(tmp_path_factory.mktemp("docs-venv"))


# -- packaging the examples ----------------------------------------------------------------------------------------

_BUILD = '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'

# A class written to MemGPT 0.3's wrapper contract, standing in for the reader's own `chatml.py` that the
# registration example imports (the page says "your MemGPT wrapper, unchanged"; we have to supply one).
_MEMGPT_STYLE_CHATML = '''
import json


class ChatMLInnerMonologueWrapper:
    """ChatML, inner thoughts inside the call's params (a minimal MemGPT-0.3-style wrapper)."""

    def __init__(self, include_assistant_prefix=True):
        self.include_assistant_prefix = include_assistant_prefix
        self.assistant_prefix_extra = '\\n{\\n  "function":'

    def chat_completion_to_prompt(self, messages, functions, function_documentation=None):
        system = messages[0]["content"] + "\\nAvailable functions:\\n"
        for f in functions:
            system += f"{f['name']}: {f['description']}\\n"
            for param, spec in f["parameters"]["properties"].items():
                system += f"  {param}: {spec.get('description', '')}\\n"
        prompt = f"<|im_start|>system\\n{system}<|im_end|>"
        for m in messages[1:]:
            if m["role"] == "assistant":
                call = m["function_call"]
                params = {"inner_thoughts": m["content"], **json.loads(call["arguments"])}
                text = json.dumps({"function": call["name"], "params": params})
            else:
                text = m["content"]
            role = "user" if m["role"] in ("user", "function") else m["role"]
            prompt += f"\\n<|im_start|>{role}\\n{text}<|im_end|>"
        prompt += "\\n<|im_start|>assistant"
        if self.include_assistant_prefix:
            prompt += self.assistant_prefix_extra
        return prompt

    def output_to_chat_completion_response(self, raw_llm_output):
        text = raw_llm_output.strip()
        if self.assistant_prefix_extra and not text.startswith("{"):
            text = self.assistant_prefix_extra + text
        data = json.loads(text)
        params = dict(data["params"])
        thoughts = params.pop("inner_thoughts", None)
        return {
            "role": "assistant",
            "content": thoughts,
            "function_call": {"name": data["function"], "arguments": json.dumps(params)},
        }
'''


def _package(root: Path, distribution: str, module: str, files: dict[str, str], pyproject: str | None = None) -> str:
    """A folder holding one package ``module`` (``files`` by name) and a pyproject.toml; the doc's own pyproject text
    where the page gives one, with the build system and the package list it leaves out added."""
    folder = root / distribution
    (folder / module).mkdir(parents=True)
    for name, text in files.items():
        (folder / module / name).write_text(text, encoding="utf-8")
    if pyproject is None:
        pyproject = (
            f'[project]\nname = "{distribution}"\nversion = "0.1.0"\ndependencies = ["memgpt-core"]\n\n'
            f'[project.entry-points.memgpt]\n{module} = "{module}"\n'
        )
    text = _BUILD + pyproject + f'\n[tool.setuptools]\npackages = ["{module}"]\n'
    (folder / "pyproject.toml").write_text(text, encoding="utf-8")
    return str(folder)


def _fake_generate_server(httpserver) -> None:
    """A server in the shape MyServerBackend reads (POST /generate -> {"text", "truncated"}): it always writes up to
    the token cap, unless a grammar is sent, which it obeys by answering "yes"."""
    from werkzeug.wrappers import Response

    def generate(request):
        body = request.get_json()
        if body.get("grammar"):
            answer = {"text": "yes", "truncated": False}
        else:
            answer = {"text": " ".join(["word"] * body["max_tokens"]), "truncated": True}
        return Response(json.dumps(answer), content_type="application/json")

    httpserver.expect_request("/generate", method="POST").respond_with_handler(generate)


@pytest.mark.pip
def test_plugins_md_examples_install_list_and_work(venv: Venv, httpserver, tmp_path: Path) -> None:
    blocks = code_blocks(PLUGINS_MD)
    work = tmp_path / "examples"

    # A backend plugin: the page's pyproject.toml and module, as given.
    myserver = _package(
        work,
        "memgpt-backend-myserver",
        "memgpt_backend_myserver",
        {"__init__.py": block(blocks, "python", "class MyServerBackend(")},
        pyproject=block(blocks, "toml", 'name = "memgpt-backend-myserver"'),
    )
    # The OpenAI-compatible backend: the example has no registration hook, so we add the minimum one.
    openai_code = block(blocks, "python", "class MyOpenAIServerBackend(")
    openai_code += "\n\nfrom memgpt_core import hookimpl\n\n\n@hookimpl\ndef register_backends(register):\n"
    openai_code += "    register(MyOpenAIServerBackend)\n"
    myopenai = _package(work, "memgpt-backend-myopenai", "memgpt_backend_myopenai", {"__init__.py": openai_code})
    # Registering a MemGPT wrapper: the page's hook and entry point; `chatml.py` is ours (see above).
    entry_point = block(blocks, "toml", 'my_wrappers = "my_wrappers"')
    my_wrappers = _package(
        work,
        "my-wrappers",
        "my_wrappers",
        {"__init__.py": block(blocks, "python", "from .chatml import"), "chatml.py": _MEMGPT_STYLE_CHATML},
        pyproject='[project]\nname = "my-wrappers"\nversion = "0.1.0"\ndependencies = ["memgpt-core"]\n\n'
        + entry_point,
    )
    # A wrapper of core's own kind; the conformance example imports it from `memgpt_wrappers_alpaca`.
    alpaca = _package(
        work,
        "memgpt-wrappers-alpaca",
        "memgpt_wrappers_alpaca",
        {"__init__.py": block(blocks, "python", "class AlpacaWrapper(")},
    )
    # A grammar provider and a command, as given (its `...` stay: they are what build() returns and what the command
    # prints, so the example runs as written).
    grammar = _package(
        work, "memgpt-my-grammar", "memgpt_my_grammar", {"__init__.py": block(blocks, "python", "class MyGrammar(")}
    )
    venv.install(myserver, myopenai, my_wrappers, alpaca, grammar)

    # Every example is listed, none broken, each registering what the page says.
    listed = {p["name"]: p for p in venv.listed()}
    assert {name: p["error"] for name, p in listed.items()} == {
        "memgpt-backend-myserver": None,
        "memgpt-backend-myopenai": None,
        "my-wrappers": None,
        "memgpt-wrappers-alpaca": None,
        "memgpt-my-grammar": None,
    }
    assert listed["memgpt-backend-myserver"]["backends"] == ["myserver"]
    assert listed["memgpt-backend-myopenai"]["backends"] == ["myopenai"]
    assert listed["my-wrappers"]["wrappers"] == ["my-chatml", "my-chatml-grammar"]
    assert listed["memgpt-wrappers-alpaca"]["wrappers"] == ["alpaca", "alpaca-grammar"]
    assert listed["memgpt-my-grammar"]["grammars"] == ["my-grammar"]
    assert len(listed["memgpt-my-grammar"]["commands"]) == 1
    command = listed["memgpt-my-grammar"]["commands"][0]
    assert command in ("my-report", "my_report")

    url = httpserver.url_for("").rstrip("/")

    # MyServerBackend against a fake server answering POST /generate as the example reads it.
    _fake_generate_server(httpserver)
    out = venv.script(
        f"""
        import json
        from memgpt_core import plugins
        from memgpt_core.models import CompletionRequest, Grammar
        backend = plugins.get_backend("myserver")("{url}")
        plain = backend.complete(CompletionRequest(prompt="Once upon a time", max_tokens=3))
        gbnf = Grammar(format="gbnf", text='root ::= "yes" | "no"')
        constrained = backend.complete(CompletionRequest(prompt="Sky green?", max_tokens=8, grammar=gbnf))
        try:
            schema = Grammar(format="json_schema", text="{{}}")
            backend.complete(CompletionRequest(prompt="x", max_tokens=8, grammar=schema))
        except Exception as exc:
            refused = type(exc).__name__
        print(json.dumps([plain.text, plain.finish_reason, constrained.text, constrained.finish_reason, refused]))
        """
    )
    assert json.loads(out) == ["word word word", "length", "yes", "stop", "ConfigError"]
    sent = [json.loads(request.data) for request, _ in httpserver.log]
    assert sent[0] == {"prompt": "Once upon a time", "max_tokens": 3, "stop": []}
    assert sent[1]["grammar"] == 'root ::= "yes" | "no"'
    assert len(sent) == 2, "the refused grammar must not reach the server"

    # MyOpenAIServerBackend against a fake OpenAI-compatible server with /tokenize.
    httpserver.clear()
    httpserver.expect_request("/tokenize", method="POST").respond_with_json({"count": 5})
    httpserver.expect_request("/v1/completions", method="POST").respond_with_json(
        {"choices": [{"text": "Hello there", "finish_reason": "stop"}], "usage": {"completion_tokens": 2}}
    )
    out = venv.script(
        f"""
        import json
        from memgpt_core import plugins
        from memgpt_core.errors import ContextOverflowError
        from memgpt_core.models import CompletionRequest
        backend = plugins.get_backend("myopenai")("{url}")
        done = backend.complete(CompletionRequest(prompt="Hi", max_tokens=4, context_window=100))
        try:
            backend.complete(CompletionRequest(prompt="Hi", max_tokens=4, context_window=8))
            overflow = False
        except ContextOverflowError:
            overflow = True
        print(json.dumps([done.text, done.finish_reason, done.prompt_tokens, overflow]))
        """
    )
    assert json.loads(out) == ["Hello there", "stop", 5, True]
    paths = [request.path for request, _ in httpserver.log]
    assert paths == ["/tokenize", "/v1/completions", "/tokenize"], "an overflowing prompt must not be sent"

    # The Alpaca wrapper and the MemGPT-style one, through the adapter core uses.
    out = venv.script(
        """
        import json
        from memgpt_core import plugins
        from memgpt_core.errors import ParseError
        functions = [{"name": "send_message", "description": "Say something.",
                      "parameters": {"type": "object", "properties": {"message": {"type": "string"}},
                                     "required": ["message"]}}]
        messages = [{"role": "system", "content": "You are Sam."},
                    {"role": "user", "content": json.dumps({"type": "user_message", "message": "hi"})}]
        result = {}
        for name in ("alpaca", "alpaca-grammar", "my-chatml-grammar"):
            wrapper = plugins.get_wrapper(name)
            prompt = wrapper.prompt(messages, functions)
            answer = {"function": "send_message", "params": {"inner_thoughts": "greet", "message": "Hello"}}
            call = wrapper.parse(json.dumps(answer), functions)
            try:
                wrapper.parse("no call here", functions)
                garbage = "read"
            except ParseError:
                garbage = "ParseError"
            result[name] = {"prompt": prompt, "call": [call.name, call.arguments, call.inner_thoughts],
                            "garbage": garbage, "grammar": wrapper.grammar, "stops": list(wrapper.stop_sequences)}
        print(json.dumps(result))
        """
    )
    result = json.loads(out)
    for name in ("alpaca", "alpaca-grammar", "my-chatml-grammar"):
        assert result[name]["call"] == ["send_message", {"message": "Hello"}, "greet"], name
        assert result[name]["garbage"] == "ParseError", name
        assert "You are Sam." in result[name]["prompt"] and "send_message" in result[name]["prompt"], name
    alpaca_prompt = result["alpaca"]["prompt"]
    assert alpaca_prompt.startswith("### Instruction:") and "### Input:\nUSER: " in alpaca_prompt
    assert "### Response:\n" in alpaca_prompt
    assert result["alpaca"]["stops"] == ["\n### Instruction:", "\n### Input:", "\n### Response:"]
    assert result["alpaca"]["grammar"] is None and result["alpaca-grammar"]["grammar"] == "function-call"
    assert result["my-chatml-grammar"]["grammar"] == "function-call"

    # The grammar provider builds, and the command runs.
    out = venv.script(
        """
        from memgpt_core import plugins
        print(plugins.get_grammar("my-grammar").build([], format="gbnf", max_tokens=64))
        """
    )
    assert out.strip() == "root ::= ..."
    assert venv.run(venv.memgpt, command).stdout.strip() == "..."
    assert "One line of help." in venv.run(venv.memgpt, "--help").stdout

    # The conformance-kit example, as a test file run with pytest where the packages are installed. Its endpoint
    # fixture names a server on 127.0.0.1:5005; we point it at the fake /generate server instead, so that the live
    # checks run rather than fail for want of a server.
    httpserver.clear()
    _fake_generate_server(httpserver)
    kit = block(blocks, "python", "BackendConformance")
    assert '"http://127.0.0.1:5005"' in kit
    tests = work / "conformance"
    tests.mkdir()
    (tests / "test_conformance.py").write_text(kit.replace('"http://127.0.0.1:5005"', f'"{url}"'), encoding="utf-8")
    done = venv.run(
        venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tests), check=False, cwd=tests
    )
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout + done.stderr
    skipped = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    # The example backend declares neither a chat template nor streaming: only those checks may skip.
    assert all("chat_template" in line or "streaming" in line for line in skipped), done.stdout


# -- docs/backends.md's defaults table ----------------------------------------------------------------------------

_GRAMMAR_WORDS = {"GBNF": "gbnf", "JSON schema": "json_schema"}


def _defaults_table() -> dict[str, dict[str, str]]:
    """The first table of docs/backends.md: {backend name: {row label: cell}}; backends read from the header's
    backquoted names."""
    lines = [line for line in BACKENDS_MD.read_text(encoding="utf-8").splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("| |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, body = rows[0], rows[2:]
    names = []
    for cell in header[1:]:
        found = re.search(r"\(`([^`]+)`\)", cell)
        assert found, f"no backend name in header cell {cell!r}"
        names.append(found.group(1))
    table: dict[str, dict[str, str]] = {name: {} for name in names}
    for row in body:
        assert len(row) == len(header), f"row {row[0]!r} has {len(row)} cells, the header {len(header)}"
        for name, cell in zip(names, row[1:], strict=True):
            table[name][row[0]] = cell
    return table


def _grammar_formats(cell: str) -> frozenset[str]:
    text = re.sub(r"\([^)]*\)", "", cell)  # drop the parameter name in brackets: "GBNF (`grammar`)"
    found = {fmt for word, fmt in _GRAMMAR_WORDS.items() if word.lower() in text.lower()}
    if not found:
        # "none declared" is the openai backend's class: it learns what the server takes when it meets it.
        assert text.strip().lower() in ("no", "none", "none declared", "-", "—"), f"unknown grammar cell {cell!r}"
    return frozenset(found)


def test_backends_md_defaults_table_matches_the_backends() -> None:
    from memgpt_core import plugins, selection

    table = _defaults_table()
    assert sorted(table) == sorted(plugins.get_backends()), "every installed backend has a column, and no other"
    wrong = []
    for name, rows in table.items():
        backend = plugins.get_backend(name)
        documented = {
            "default URL": rows["default URL"].strip("`"),
            "grammar": _grammar_formats(rows["grammar"]),
            # The first name in the cell; a note may follow it ("... (the -grammar one on a server ...)").
            "default wrapper": re.match(r"`([^`]+)`", rows["default wrapper"]).group(1),  # type: ignore[union-attr]
        }
        actual = {
            "default URL": backend.default_endpoint,
            "grammar": frozenset(backend.capabilities.grammar_formats),
            "default wrapper": selection.default_wrapper_name(backend),
        }
        for row, value in documented.items():
            if value != actual[row]:
                wrong.append(f"{name} / {row}: the page says {value!r}, the code has {actual[row]!r}")
    assert not wrong, "docs/backends.md's table is out of date:\n" + "\n".join(wrong)
