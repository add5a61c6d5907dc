"""memgpt-backend-webui installs on its own: a fresh virtual environment with memgpt-core and this plugin only, then
a real completion through it against the real llama-server (webui's OpenAI-compatible path)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.pip  # installs with pip into a new virtual environment

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache", "dist", "tests")


def _run(*args: str) -> str:
    # The new environment must see only what was installed into it.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "MEMGPT_LOAD_PLUGINS", "VIRTUAL_ENV"}}
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_webui_plugin_alone_with_core(tmp_path: Path, llama_server: Any) -> None:
    # Copies, so setuptools' build/ folders never land in the work tree.
    core = tmp_path / "src" / "memgpt-core"
    core.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, core / name)
    shutil.copytree(ROOT / "memgpt_core", core / "memgpt_core", ignore=_SKIP)
    plugin = tmp_path / "src" / PLUGIN.name
    shutil.copytree(PLUGIN, plugin, ignore=_SKIP)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(core), str(plugin))

    listed = json.loads(_run(str(venv / "bin" / "memgpt"), "plugins", "list", "--json"))
    assert [p["name"] for p in listed] == ["memgpt-backend-webui"], "only core and this plugin are installed"
    assert listed[0]["backends"] == ["webui", "webui-legacy"] and listed[0]["error"] is None

    script = (
        "import json, sys\n"
        "from memgpt_core import plugins\n"
        "from memgpt_core.models import CompletionRequest\n"
        "backend = plugins.get_backend('webui')(sys.argv[1])\n"
        "done = backend.complete(CompletionRequest(prompt='The sky is', max_tokens=3))\n"
        "print(json.dumps({'text': done.text, 'finish': done.finish_reason}))\n"
    )
    answer = json.loads(_run(python, "-c", script, llama_server.url).strip().splitlines()[-1])
    assert answer["text"] and answer["finish"] in ("stop", "length")
