"""Prompts the llamacpp backend's tests send to the real llama-server: SmolLM2's ChatML turn and a tiny
function-call grammar."""

CHATML = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"

# A tiny function-call grammar written for these tests: {"function": "<name>", "message": "<letters>"}.
CALL_GBNF = r"""
root    ::= "{" ws "\"function\":" ws name "," ws "\"message\":" ws text ws "}"
name    ::= "\"send_message\"" | "\"core_memory_append\""
text    ::= "\"" [a-zA-Z ,.!]{1,40} "\""
ws      ::= [ ]?
"""


def chatml(user: str, system: str = "You are a helpful assistant.") -> str:
    """One user turn in ChatML, ending where the assistant's answer begins."""
    return CHATML.format(system=system, user=user)
