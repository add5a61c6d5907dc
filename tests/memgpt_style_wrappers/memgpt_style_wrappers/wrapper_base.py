"""The abstract wrapper, with the two methods of MemGPT's ``LLMChatCompletionWrapper`` (``wrapper_base.py``)."""

from abc import ABC, abstractmethod


class LLMChatCompletionWrapper(ABC):
    @abstractmethod
    def chat_completion_to_prompt(self, messages, functions, function_documentation=None):
        """Render chat messages plus function schemas as one prompt string."""

    @abstractmethod
    def output_to_chat_completion_response(self, raw_llm_output):
        """Read the model's raw text back as a chat-completion assistant message."""
