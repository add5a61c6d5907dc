"""A Zephyr (Mistral 7B) wrapper with inner thoughts, to MemGPT 0.3's contract (cf. its ``zephyr.py``)."""

from ._common import call_as_json, event_message_or_text, function_section, to_assistant_message
from .json_reading import decode_or_fail
from .wrapper_base import LLMChatCompletionWrapper

_END = "</s>"


class ZephyrStyleWrapper(LLMChatCompletionWrapper):
    """``<|system|>`` / ``<|user|>`` / ``<|assistant|>`` turns ending in ``</s>``; no first-message support.

    The reply is primed with ``{``; MemGPT makes its grammar variant with ``include_opening_brace_in_prefix=False``.
    """

    def __init__(
        self,
        simplify_json_content=True,
        clean_function_args=True,
        include_assistant_prefix=True,
        include_opening_brace_in_prefix=True,
    ):
        self.simplify_json_content = simplify_json_content
        self.clean_func_args = clean_function_args
        self.include_assistant_prefix = include_assistant_prefix
        self.include_opening_brance_in_prefix = include_opening_brace_in_prefix  # sic: MemGPT's attribute name

    def chat_completion_to_prompt(self, messages, functions, function_documentation=None):
        assert messages[0]["role"] == "system"
        system = f"{messages[0]['content']}\n{function_section(functions, function_documentation)}"
        parts = [f"<|system|>\n{system}{_END}"]
        for message in messages[1:]:
            role = message["role"]
            assert role in ["user", "assistant", "function", "tool"], message
            if role == "user":
                text = message["content"]
                parts.append(f"<|user|>\n{event_message_or_text(text) if self.simplify_json_content else text}{_END}")
            elif role == "assistant":
                if message.get("function_call"):
                    text = call_as_json(message["function_call"], message.get("content"))
                else:
                    text = message.get("content") or ""
                parts.append(f"<|assistant|>\n{text}{_END}")
            else:
                parts.append(f"<|assistant|>\nFUNCTION RETURN: {message['content']}{_END}")
        prompt = "\n".join(parts)
        if self.include_assistant_prefix:
            prompt += "\n<|assistant|>"
            if self.include_opening_brance_in_prefix:
                prompt += "\n{"
        return prompt

    def output_to_chat_completion_response(self, raw_llm_output):
        # Indexing, not startswith: an empty output raises IndexError here, exactly as MemGPT's does.
        if self.include_opening_brance_in_prefix and raw_llm_output[0] != "{":
            raw_llm_output = "{" + raw_llm_output
        return to_assistant_message(decode_or_fail(raw_llm_output), self.clean_func_args, unwrap_nested=False)
