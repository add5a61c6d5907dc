"""An Airoboros 2.1 wrapper with inner thoughts, to MemGPT 0.3's contract (cf. its ``airoboros.py``)."""

from ._common import call_as_json, event_message_or_text, function_section, to_assistant_message
from .json_reading import decode_or_fail
from .wrapper_base import LLMChatCompletionWrapper


class AiroborosStyleWrapper(LLMChatCompletionWrapper):
    """``USER:`` / ``ASSISTANT:`` lines between ``### INPUT`` and ``### RESPONSE``; no first-message support.

    MemGPT makes its grammar variant with ``assistant_prefix_extra=None`` (no primed JSON start).
    """

    def __init__(
        self,
        simplify_json_content=True,
        clean_function_args=True,
        include_assistant_prefix=True,
        assistant_prefix_extra='\n{\n  "function":',
        include_section_separators=True,
    ):
        self.simplify_json_content = simplify_json_content
        self.clean_func_args = clean_function_args
        self.include_assistant_prefix = include_assistant_prefix
        self.assistant_prefix_extra = assistant_prefix_extra
        self.include_section_separators = include_section_separators

    def chat_completion_to_prompt(self, messages, functions, function_documentation=None):
        assert messages[0]["role"] == "system"
        lines = [messages[0]["content"], function_section(functions, function_documentation)]
        if self.include_section_separators:
            lines.append("### INPUT")
        for message in messages[1:]:
            role = message["role"]
            assert role in ["user", "assistant", "function", "tool"], message
            if role in ("user", "assistant"):
                who = role.upper() + (f" ({message['name'].strip()})" if "name" in message else "")
                if role == "user":
                    text = message["content"]
                    lines.append(f"{who}: {event_message_or_text(text) if self.simplify_json_content else text}")
                elif message.get("function_call"):
                    lines += [f"{who}:", call_as_json(message["function_call"], message.get("content"))]
                else:
                    lines.append(f"{who}: {message.get('content') or ''}")
            else:
                lines.append(f"FUNCTION RETURN: {message['content']}")
        if self.include_section_separators:
            lines.append("### RESPONSE")
        prompt = "\n".join(lines)
        if self.include_assistant_prefix:
            prompt += "\nASSISTANT:" + (self.assistant_prefix_extra or "")
        return prompt

    def output_to_chat_completion_response(self, raw_llm_output):
        prefix = self.assistant_prefix_extra
        if prefix and not raw_llm_output.startswith(prefix):
            raw_llm_output = prefix + raw_llm_output
        return to_assistant_message(decode_or_fail(raw_llm_output), self.clean_func_args)
