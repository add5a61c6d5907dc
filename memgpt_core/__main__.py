"""``python -m memgpt_core`` runs the command line."""

from memgpt_core.cli import main

main()
