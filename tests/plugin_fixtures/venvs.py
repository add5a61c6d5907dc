"""New virtual environments for the tests that install memgpt with pip, and the wheels they install from.

- :func:`core_venv`: memgpt-core from this checkout, built from source; tests then add plugins folder by folder.
- :func:`build_wheels` and :func:`bare_venv`: the install path a user follows, ``make dist`` and then
  ``pip install --find-links dist memgpt-backend-NAME``.

Sources are copied to a temporary folder first, so that setuptools' ``build/`` folders never land in the work tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
_SKIPPED = ("build", "*.egg-info", "__pycache__", ".pytest_cache", "dist")
SKIP = shutil.ignore_patterns(*_SKIPPED)


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

    def install_plugin(self, folder: Path) -> list[str]:
        """Install a plugin folder together with the plugins it depends on (for a backend, the wrappers its defaults
        pick), each from its folder in one pip command, and return the distributions installed, sorted.
        memgpt-core is left out: :func:`core_venv` installed it."""
        folders = [folder, *local_dependencies(folder)]
        self.install(*(self.source(f) for f in folders))
        return sorted(distribution_name(f) for f in folders)

    def install_from(self, wheels: Path, *requirements: str) -> None:
        """``pip install --find-links WHEELS REQUIREMENT...``: what a user types after ``make dist``."""
        self.pip("install", "--find-links", str(wheels), *requirements)

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


def bare_venv(base: Path) -> Venv:
    """A new environment under ``base`` with pip and nothing else."""
    env = Venv(base / "venv", base / "src")
    env.sources.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "venv", str(env.root)], check=True, timeout=300)
    return env


def core_venv(base: Path) -> Venv:
    """A new environment under ``base`` with setuptools, wheel, pytest (for plugins' own tests) and memgpt-core."""
    env = bare_venv(base)
    core = env.sources / "memgpt-core"
    core.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, core / name)
    shutil.copytree(ROOT / "memgpt_core", core / "memgpt_core", ignore=SKIP)
    env.pip("install", "setuptools>=68", "wheel", "pytest")
    env.install(str(core))
    return env


# -- plugin folders and their declared dependencies ----------------------------------------------------------------


def _project(folder: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the TOML reader pip carries
        from pip._vendor import tomli as tomllib
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def plugin_folders() -> list[Path]:
    """Every plugin distribution of this checkout: the folders under plugins/ with a pyproject.toml, sorted."""
    return sorted(p.parent for p in PLUGINS.glob("*/pyproject.toml"))


def distribution_name(folder: Path) -> str:
    return str(_project(folder)["name"])


def local_dependencies(folder: Path) -> list[Path]:
    """The plugin folders whose distributions ``folder`` depends on, directly or not (memgpt-core excluded), sorted."""
    by_name = {distribution_name(f): f for f in plugin_folders()}
    found: set[Path] = set()
    todo = [folder]
    while todo:
        for requirement in _project(todo.pop()).get("dependencies", []):
            name = re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0]
            dependency = by_name.get(name)
            if dependency is not None and dependency not in found:
                found.add(dependency)
                todo.append(dependency)
    return sorted(found)


# -- wheels, built the way a user builds them ------------------------------------------------------------------------


def build_wheels(target: Path) -> Path:
    """``make dist`` on a copy of this checkout: a wheel of memgpt-core and of every plugin, written to ``target``.

    The copy holds what the Makefile builds from (its recipe is the one under test); the Python that runs pip is the
    one running the tests, passed as ``VENV`` so that make creates no environment of its own.
    """
    tree = target.parent / f"{target.name}-checkout"
    tree.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "memgpt_core", tree / "memgpt_core", ignore=SKIP)
    for folder in plugin_folders():
        shutil.copytree(folder, tree / "plugins" / folder.name, ignore=shutil.ignore_patterns("tests", *_SKIPPED))
    python = Path(sys.prefix) / "bin" / "python"
    assert python.exists(), f"run the tests from a virtual environment (no {python})"
    # An outer make (``make test``) passes its flags and variables down through the environment: not to this one.
    env = {k: v for k, v in clean_env().items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(tree), "dist", f"VENV={sys.prefix}", f"DIST={target}"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, f"make dist failed:\n{done.stdout}\n{done.stderr}"
    return target
