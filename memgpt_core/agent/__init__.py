"""The MemGPT agent: core, recall and archival memory, the functions, the loop, the context budget and summaries."""

from __future__ import annotations

from memgpt_core.agent.agent import Agent, AgentSettings, TurnFailedError
from memgpt_core.agent.budget import ContextTooSmallError
from memgpt_core.agent.events import Event, StepInfo, TurnResult

__all__ = ["Agent", "AgentSettings", "ContextTooSmallError", "Event", "StepInfo", "TurnFailedError", "TurnResult"]
