"""`pip install . plugins/memgpt_backend_ollama` in a new virtual environment: exactly this backend, with the wrapper
distribution it depends on, and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "plugin_fixtures"))
from venvs import core_venv  # noqa: E402

pytestmark = pytest.mark.pip


def test_pip_install_gives_the_ollama_backend_and_its_wrappers(tmp_path: Path) -> None:
    venv = core_venv(tmp_path)  # memgpt-core from this checkout, built and installed as `pip install .` does
    # memgpt-backend-ollama depends on memgpt-wrappers-airoboros (its default wrappers); neither is on an index, so
    # both folders go to pip in one command, as a user installing from a checkout does.
    venv.install(
        venv.source(ROOT / "plugins" / "memgpt_backend_ollama"),
        venv.source(ROOT / "plugins" / "memgpt_wrappers_airoboros"),
    )
    listed = {p["name"]: p for p in venv.listed()}
    assert sorted(listed) == ["memgpt-backend-ollama", "memgpt-wrappers-airoboros"]
    assert listed["memgpt-backend-ollama"]["backends"] == ["ollama"]
    assert listed["memgpt-backend-ollama"]["error"] is None and listed["memgpt-wrappers-airoboros"]["error"] is None
    assert "airoboros-l2-70b-2.1-grammar" in listed["memgpt-wrappers-airoboros"]["wrappers"]
    table = venv.run(venv.memgpt, "plugins", "list").stdout
    assert "memgpt-backend-ollama" in table and "backends: ollama" in table
    # The installed package passes its own import-time check: registering it loads nothing heavy.
    loaded = venv.script(
        """
        import sys
        from memgpt_core import plugins
        print(plugins.get_backend("ollama").default_endpoint, "pydantic" in sys.modules)
        """
    )
    assert loaded.split() == ["http://127.0.0.1:11434", "False"]
