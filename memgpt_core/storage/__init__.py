"""Persistence for agents: one SQLite file (WAL) under MEMGPT_HOME holding every agent, its memory and messages, the
archival vectors and the loaded document sources."""

from __future__ import annotations

from memgpt_core.storage.archival import HybridArchivalIndex
from memgpt_core.storage.sqlite import (
    AgentLock,
    AgentRecord,
    ArchivalIndex,
    Fts5ArchivalIndex,
    MessageRecord,
    SearchPage,
    Store,
    memgpt_home,
)

__all__ = [
    "AgentLock",
    "AgentRecord",
    "ArchivalIndex",
    "Fts5ArchivalIndex",
    "HybridArchivalIndex",
    "MessageRecord",
    "SearchPage",
    "Store",
    "memgpt_home",
]
