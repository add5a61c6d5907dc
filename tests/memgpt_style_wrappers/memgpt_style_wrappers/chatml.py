"""A ChatML wrapper with inner thoughts inside the call's params, to MemGPT 0.3's contract (cf. its ``chatml.py``)."""

import json

from ._common import call_as_json, event_message_or_text, function_section, pretty_json_or_text, to_assistant_message
from .json_reading import decode_or_fail
from .wrapper_base import LLMChatCompletionWrapper


class ChatMLStyleWrapper(LLMChatCompletionWrapper):
    """``<|im_start|>role ... <|im_end|>`` turns; the reply is primed with the start of the JSON call."""

    # MemGPT's proxy passes first_message= to both methods only when this is True.
    supports_first_message = True

    def __init__(
        self,
        json_indent=2,
        simplify_json_content=False,
        clean_function_args=True,
        include_assistant_prefix=True,
        assistant_prefix_extra='\n{\n  "function":',
        assistant_prefix_extra_first_message='\n{\n  "function": "send_message",',
        allow_custom_roles=True,
        use_system_role_in_user=False,
        allow_function_role=False,
        no_function_role_role="assistant",
        no_function_role_prefix="FUNCTION RETURN:\n",
    ):
        self.json_indent = json_indent
        self.simplify_json_content = simplify_json_content
        self.clean_func_args = clean_function_args  # MemGPT's attribute name
        self.include_assistant_prefix = include_assistant_prefix
        # The proxy sets both of these to "" for a "-grammar" name: the grammar, not a prefix, shapes the reply.
        self.assistant_prefix_extra = assistant_prefix_extra
        self.assistant_prefix_extra_first_message = assistant_prefix_extra_first_message
        self.allow_custom_roles = allow_custom_roles
        self.use_system_role_in_user = use_system_role_in_user
        self.allow_function_role = allow_function_role
        self.no_function_role_role = no_function_role_role
        self.no_function_role_prefix = no_function_role_prefix

    @staticmethod
    def _turn(role, text):
        return f"<|im_start|>{role}\n{text.strip()}<|im_end|>"

    def _speaker(self, message):
        return message["name"].strip().lower() if self.allow_custom_roles and "name" in message else message["role"]

    def _user_turn(self, message):
        content = message["content"]
        if self.simplify_json_content:
            text = event_message_or_text(content)
        else:
            text = pretty_json_or_text(content, self.json_indent)
        speaker = self._speaker(message)
        if self.use_system_role_in_user:
            try:
                if json.loads(content, strict=False)["type"] != "user_message":
                    speaker = "system"
            except (TypeError, ValueError, KeyError, IndexError):
                pass
        return self._turn(speaker, text)

    def _assistant_turn(self, message):
        thoughts = message.get("content")
        if message.get("function_call"):
            calls = [message["function_call"]]
        else:
            calls = [tool_call["function"] for tool_call in message.get("tool_calls") or []]
        text = "\n".join(call_as_json(call, thoughts, self.json_indent) for call in calls) if calls else thoughts or ""
        return self._turn(self._speaker(message), text)

    def _function_turn(self, message):
        text = pretty_json_or_text(message["content"], self.json_indent).strip()
        if self.allow_function_role:
            return self._turn(message["role"], text)
        return self._turn(self.no_function_role_role, self.no_function_role_prefix + text)

    def chat_completion_to_prompt(self, messages, functions, first_message=False, function_documentation=None):
        assert messages[0]["role"] == "system"
        system = f"{messages[0]['content']}\n{function_section(functions, function_documentation)}"
        turns = [self._turn("system", system)]
        for message in messages[1:]:
            assert message["role"] in ["user", "assistant", "function", "tool"], message
            if message["role"] == "user":
                turns.append(self._user_turn(message))
            elif message["role"] == "assistant":
                turns.append(self._assistant_turn(message))
            else:
                turns.append(self._function_turn(message))
        prompt = "\n".join(turns)
        if self.include_assistant_prefix:
            prompt += "\n<|im_start|>assistant"
            if self.supports_first_message and first_message:
                extra = self.assistant_prefix_extra_first_message
            else:
                extra = self.assistant_prefix_extra
            if extra:
                prompt += extra
        return prompt

    def output_to_chat_completion_response(self, raw_llm_output, first_message=False):
        prefix = self.assistant_prefix_extra_first_message if first_message else self.assistant_prefix_extra
        if prefix and not raw_llm_output.startswith(prefix):  # the primed prefix is part of the call: put it back
            raw_llm_output = prefix + raw_llm_output
        return to_assistant_message(decode_or_fail(raw_llm_output), self.clean_func_args)
