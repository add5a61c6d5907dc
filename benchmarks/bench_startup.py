"""Start-up benchmark: `memgpt --help` and `memgpt plugins list` against `python -c pass` and `llm plugins`.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_startup.py [--runs 40]

It builds two environments under .bench/ (gitignored) on first use:
  .bench/memgpt  memgpt-core and every plugin in plugins/, installed as a user would (not editable);
  .bench/llm     the `llm` package from PyPI, the anchor.
and also times the development environment .venv (editable installs). Commands are run in interleaved rounds, so
that load from other processes on the machine falls on every command alike. It prints two medians per command: wall
time, and the CPU time (user + system) of the child process, which load on a shared machine disturbs much less.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
_SKIP = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests", ".pytest_cache", "dist")


def make_venv(path: Path, *packages: str) -> Path:
    if not (path / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run(
        [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
        check=True,
    )
    return path


def memgpt_venv() -> Path:
    """memgpt-core and all plugins, built from copies so that no build/ folder lands in the work tree."""
    with tempfile.TemporaryDirectory() as tmp:
        sources = []
        core = Path(tmp) / "memgpt-core"
        core.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, core / name)
        shutil.copytree(ROOT / "memgpt_core", core / "memgpt_core", ignore=_SKIP)
        sources.append(str(core))
        for plugin in sorted((ROOT / "plugins").iterdir()):
            if (plugin / "pyproject.toml").exists():
                shutil.copytree(plugin, Path(tmp) / plugin.name, ignore=_SKIP)
                sources.append(str(Path(tmp) / plugin.name))
        # Later runs reinstall only memgpt's own packages, so the figures follow the code in the work tree.
        again = (BENCH / "memgpt" / "bin" / "memgpt").exists()
        return make_venv(BENCH / "memgpt", *(["--force-reinstall", "--no-deps"] if again else []), *sources)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time, and CPU time (user + system) of the child, which other load on the machine disturbs less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr.decode()}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per command (after 3 warm-up runs)")
    parser.add_argument("--skip-setup", action="store_true", help="reuse .bench/ as it is")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time the steps of start-up (click+pluggy, CLI, plugin loading)"
    )
    args = parser.parse_args()

    BENCH.mkdir(exist_ok=True)
    if not args.skip_setup:
        memgpt_venv()
        make_venv(BENCH / "llm", "llm")
    mem, llm, dev = BENCH / "memgpt" / "bin", BENCH / "llm" / "bin", ROOT / ".venv" / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("MEMGPT_LOAD_PLUGINS", "PYTHONPATH", "VIRTUAL_ENV")}
    env["LLM_USER_PATH"] = str(BENCH / "llm-home")  # keep llm's own files out of the home folder

    commands = {
        "python -c pass": [str(mem / "python"), "-c", "pass"],
        "memgpt --help": [str(mem / "memgpt"), "--help"],
        "memgpt plugins list": [str(mem / "memgpt"), "plugins", "list"],
        "memgpt --help (dev .venv, editable)": [str(dev / "memgpt"), "--help"],
        "memgpt plugins list (dev .venv, editable)": [str(dev / "memgpt"), "plugins", "list"],
        "python -c pass (llm venv)": [str(llm / "python"), "-c", "pass"],
        "llm plugins": [str(llm / "llm"), "plugins"],
    }
    if args.breakdown:  # each step includes the ones before it
        commands["step: import click, pluggy"] = [str(mem / "python"), "-c", "import click, pluggy"]
        commands["step: import memgpt_core.cli"] = [str(mem / "python"), "-c", "import memgpt_core.cli"]
        commands["step: load all plugins, no CLI"] = [
            str(mem / "python"),
            "-c",
            "from memgpt_core import plugins; plugins.get_plugins()",
        ]
    listed = subprocess.run(commands["memgpt plugins list"], capture_output=True, text=True, env=env).stdout
    print(f"plugins in .bench/memgpt:\n{listed}")

    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(3):
        for cmd in commands.values():
            timed(cmd, env)
    for _ in range(args.runs):
        for name, cmd in commands.items():
            w, c = timed(cmd, env)
            wall[name].append(w)
            cpu[name].append(c)

    for label, samples in (("wall", wall), ("cpu", cpu)):
        median = {name: statistics.median(times) * 1000 for name, times in samples.items()}
        bare, anchor = median["python -c pass"], median["llm plugins"]
        print(f"\n{'command':44} {label + ' ms':>9} {'- bare':>8} {'llm plugins / this':>18}  (medians)")
        for name, ms in median.items():
            print(f"{name:44} {ms:9.1f} {ms - bare:+8.1f} {anchor / ms:17.1f}x")
    print(f"\n{args.runs} runs each, interleaved; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
