"""A new virtual environment with memgpt-core from this checkout, for the tests that install plugins with pip.

Sources are copied to a temporary folder first, so that setuptools' ``build/`` folders never land in the work tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache", "dist")


@dataclass
class Venv:
    root: Path
    sources: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def memgpt(self) -> str:
        return str(self.root / "bin" / "memgpt")

    def run(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=600, env={**clean_env(), **(env or {})}, cwd=cwd
        )
        if check:
            assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def pip(self, *args: str) -> None:
        self.run(self.python, "-m", "pip", "--quiet", "--disable-pip-version-check", *args)

    def install(self, *folders: str) -> None:
        """pip install local folders, building with the environment's own setuptools (no isolated build env each
        time: that halves the time; the setuptools and wheel it needs are installed with core)."""
        self.pip("install", "--no-build-isolation", *folders)

    def source(self, folder: Path) -> str:
        """A private copy of a package folder, to build from."""
        target = self.sources / folder.name
        if not target.exists():
            shutil.copytree(folder, target, ignore=SKIP)
        return str(target)

    def listed(self) -> list[dict]:
        return json.loads(self.run(self.memgpt, "plugins", "list", "--json").stdout)

    def script(self, code: str) -> str:
        return self.run(self.python, "-c", textwrap.dedent(code)).stdout


def clean_env() -> dict[str, str]:
    """This process's environment less what would let the new environment see anything not installed into it."""
    skip = {"PYTHONPATH", "MEMGPT_LOAD_PLUGINS", "MEMGPT_STRICT_PLUGINS", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in skip}


def core_venv(base: Path) -> Venv:
    """A new environment under ``base`` with setuptools, wheel, pytest (for plugins' own tests) and memgpt-core."""
    env = Venv(base / "venv", base / "src")
    env.sources.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(env.root)], check=True, timeout=300)
    core = env.sources / "memgpt-core"
    core.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, core / name)
    shutil.copytree(ROOT / "memgpt_core", core / "memgpt_core", ignore=SKIP)
    env.pip("install", "setuptools>=68", "wheel", "pytest")
    env.install(str(core))
    return env
