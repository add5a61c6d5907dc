"""Write a distribution the way pip installs one (module + ``*.dist-info`` with entry points) into a folder.

Tests put that folder on ``sys.path`` (or ``PYTHONPATH``): importlib.metadata then finds a real installed
distribution with real entry points, without the minutes a pip install per case would cost.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path


def make_distribution(root: Path, dist: str, source: str, *, version: str = "1.0", module: str | None = None) -> str:
    """Install distribution ``dist`` into ``root`` with one module of ``source`` and one ``memgpt`` entry point.

    Returns the module name (unique per distribution, so tests do not collide in ``sys.modules``).
    """
    module = module or "memgpt_fixture_" + re.sub(r"\W+", "_", dist).lower()
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{re.sub(r'[-.]+', '_', dist)}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[memgpt]\n{dist.split('-')[-1]} = {module}\n")
    return module
