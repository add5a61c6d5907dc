"""One plugin of each kind that registers cleanly and then fails while the agent uses it, each with a bug of its own.

- backend ``faulty``: its ``complete`` divides by zero;
- wrapper ``faulty-prompt``: building the prompt raises;
- wrapper ``faulty-parse``: reading any answer raises;
- grammar provider ``faulty-grammar``, asked for by the wrapper ``faulty-grammar-user``: building raises.

The wrappers are written the MemGPT way (plain classes, no base class of memgpt's), as a community port would be.
"""

from memgpt_core import hookimpl
from memgpt_core.backend import Backend
from memgpt_core.grammar import GrammarProvider


class FaultyBackend(Backend):
    name = "faulty"
    default_endpoint = "http://127.0.0.1:9"

    def complete(self, request):
        return {"tokens": 1 / 0}


class _Plain:
    """A prompt any model could read: the system text, then each message on a line."""

    def chat_completion_to_prompt(self, messages, functions, function_documentation=None):
        assert messages[0]["role"] == "system"
        lines = [messages[0]["content"], "Functions: " + ", ".join(f["name"] for f in functions)]
        lines += [f"{m['role']}: {m.get('content') or ''}" for m in messages[1:]]
        return "\n".join(lines) + "\nassistant:"

    def output_to_chat_completion_response(self, raw_llm_output):
        import json

        data = json.loads(raw_llm_output)
        return {
            "role": "assistant",
            "content": data["params"].pop("inner_thoughts", None),
            "function_call": {"name": data["function"], "arguments": json.dumps(data["params"])},
        }


class FaultyPromptWrapper(_Plain):
    def chat_completion_to_prompt(self, messages, functions, function_documentation=None):
        raise RuntimeError("faulty-prompt cannot build prompts, on purpose")


class FaultyParseWrapper(_Plain):
    def output_to_chat_completion_response(self, raw_llm_output):
        raise ValueError("faulty-parse cannot read answers, on purpose")


class FaultyGrammarUser(_Plain):
    grammar = "faulty-grammar"


class FaultyGrammar(GrammarProvider):
    name = "faulty-grammar"
    formats = frozenset({"gbnf", "json_schema"})

    def build(self, functions, *, format, inner_thoughts_in_params=True, max_string_length=None, max_tokens=None):
        return {"gbnf": "root ::= x"}["grammar-" + format]


@hookimpl
def register_backends(register):
    register(FaultyBackend)


@hookimpl
def register_wrappers(register):
    register(FaultyPromptWrapper, name="faulty-prompt")
    register(FaultyParseWrapper, name="faulty-parse")
    register(FaultyGrammarUser(), name="faulty-grammar-user")


@hookimpl
def register_grammars(register):
    register(FaultyGrammar)
