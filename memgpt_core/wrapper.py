"""The prompt-wrapper contract, and the adapter through which core talks to every wrapper, ours or MemGPT's.

A wrapper turns the agent's chat messages and function schemas into one prompt string, and the model's raw text back
into a call. The two method names are MemGPT's (``LLMChatCompletionWrapper``). Two kinds of class can be registered:

- a subclass of :class:`PromptWrapper`, core's own base, which declares its attributes, takes the cache-friendly
  layout (several system messages, earlier answers written back as the model wrote them) and core's output repair;
- a class written for MemGPT 0.3, unchanged: ``chat_completion_to_prompt(messages, functions,
  function_documentation=None)``, ``first_message=`` only where ``supports_first_message`` is True, exactly one system
  message, its own exceptions, no stop strings. A class, or an instance made with constructor arguments as MemGPT's
  own ``-grammar`` variants are.

Either way, :func:`memgpt_core.plugins.get_wrapper` hands out a :class:`Wrapper`: the one typed interface the agent and
``memgpt doctor`` use. It reads what a class declares once, when it is made, and never later.
Kept free of heavy imports: wrapper plugins import this module at start-up.
"""

from __future__ import annotations

import abc
import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from memgpt_core.errors import MemGPTError, ParseError, PluginFailedError, exception_line

if TYPE_CHECKING:
    from memgpt_core.backend import Backend, ChatTemplate
    from memgpt_core.models import FunctionCall

Message = dict[str, Any]
"""An OpenAI-style chat message: role system, user, assistant (with optional function_call) or function."""
FunctionSchema = dict[str, Any]
"""An OpenAI-style function schema: name, description, parameters (JSON Schema object)."""

DEFAULT_GRAMMAR = "function-call"
"""The grammar provider a MemGPT class gets when its registered name asks for a grammar (as MemGPT decided it: the
name contains ``grammar``). Core's built-in provider; its calls are MemGPT's ``{"function", "params"}`` shape."""

TURN_MARKERS = (
    "<|im_end|>",
    "<|im_start|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end|>",
    "<|user|>",
    "<|system|>",
    "</s>",
    "\nUSER:",
    "\nASSISTANT:",
    "\nFUNCTION RETURN:",
    "\n### ",
)
"""Where a turn ends in the common chat formats (ChatML, Llama 3, Phi, Zephyr, Airoboros, Alpaca). The stop strings
of a wrapper that declares none: MemGPT passed these from its backend settings, not from the wrapper."""


class PromptWrapper(abc.ABC):
    """Base class for core's own kind of wrapper: declared attributes, the cache-friendly layout, core's repair.

    Everything below is read once, by :class:`Wrapper`; override the class attributes, not properties.
    """

    name: ClassVar[str]
    """What users type after ``--model``."""
    description: ClassVar[str] = ""
    grammar: ClassVar[str | None] = None
    """The grammar provider to ask for (``"function-call"``, core's), or None for a plain wrapper."""
    stop_sequences: ClassVar[tuple[str, ...]] = ()
    """The strings that end the model's turn in this prompt format."""
    inner_thoughts_in_params: ClassVar[bool] = True
    """The model writes its inner monologue as the ``inner_thoughts`` parameter (else as text before the call)."""
    needs_chat_template: ClassVar[bool] = False
    """The wrapper renders the loaded model's own chat template: core calls :meth:`use_chat_template` with what the
    backend reports before the first prompt."""

    def use_chat_template(self, template: ChatTemplate | None) -> None:  # noqa: B027 - optional, most ignore it
        """Take the model's chat template (None: the backend cannot say). Raise ``ConfigError`` naming the wrappers
        to use instead when the wrapper cannot work without one."""

    @abc.abstractmethod
    def chat_completion_to_prompt(
        self,
        messages: list[Message],
        functions: list[FunctionSchema],
        first_message: bool = False,
        *,
        written: Mapping[int, str] | None = None,
    ) -> str:
        """Render the whole conversation as one prompt, ending where the model's answer starts.

        ``messages`` may hold several system messages (the instructions, then a core-memory snapshot); later ones
        are alerts. ``written`` maps the index of an assistant message to the text the model wrote for it, so that
        the wrapper can write that answer back word for word when it is the same call (the server's prompt cache
        holds the model's own tokens; a re-formatted copy would be read again on every turn).
        """

    def output_to_chat_completion_response(
        self, raw_llm_output: str, *, functions: list[FunctionSchema], first_message: bool = False
    ) -> dict[str, Any]:
        """:meth:`read_call`, as the OpenAI-style message MemGPT's wrappers return: ``{"role": "assistant",
        "content": <inner thoughts or None>, "function_call": {"name": ..., "arguments": <JSON string>}}``."""
        return self.read_call(
            raw_llm_output, functions=functions, first_message=first_message
        ).to_chat_completion_response()

    def read_call(
        self, raw_llm_output: str, *, functions: list[FunctionSchema], first_message: bool = False
    ) -> FunctionCall:
        """Read the model's text as a call to one of ``functions``, repairing what is safe.

        Returns the call only when the function was offered and every required argument is there with its declared
        type (:func:`memgpt_core.repair.check_call`). Raises :class:`~memgpt_core.errors.ParseError` with the raw
        text and the reason otherwise, and its subclass :class:`~memgpt_core.errors.TruncatedOutputError` when the
        answer was cut off inside the call. Override this, not the method above, to read another format.
        """
        from memgpt_core.repair import parse_function_call

        return parse_function_call(
            self.answer_prefix() + raw_llm_output, functions, inner_thoughts_in_params=self.inner_thoughts_in_params
        )

    def answer_prefix(self) -> str:
        """Text the prompt ends with that belongs to the answer (a primed opening brace, say), or ''."""
        return ""


class Wrapper:
    """A registered wrapper as core uses it: declared attributes, and two methods that fail only in core's terms.

    - :meth:`prompt` raises :class:`~memgpt_core.errors.PluginFailedError` (one line naming the wrapper, its
      distribution and the fix) when the wrapper's own code fails;
    - :meth:`parse` returns a call with every required argument present and typed, or raises
      :class:`~memgpt_core.errors.ParseError` carrying the raw text, whatever the wrapper raised.
    """

    __slots__ = (
        "_first_message",
        "_native",
        "_wrapped",
        "description",
        "distribution",
        "grammar",
        "inner_thoughts_in_params",
        "name",
        "needs_chat_template",
        "stop_sequences",
    )

    def __init__(self, wrapped: Any, *, name: str, distribution: str = "") -> None:
        self._wrapped = wrapped
        self.name = name
        self.distribution = distribution or type(wrapped).__module__.split(".")[0]
        self._native = isinstance(wrapped, PromptWrapper)
        if self._native:
            self.description: str = wrapped.description
            self.grammar: str | None = wrapped.grammar
            self.stop_sequences: tuple[str, ...] = tuple(wrapped.stop_sequences) or TURN_MARKERS
            self.inner_thoughts_in_params: bool = wrapped.inner_thoughts_in_params
            self.needs_chat_template: bool = wrapped.needs_chat_template
            self._first_message = True
            return
        # A class written for MemGPT (or another plain class): take what it declares, MemGPT's defaults elsewhere.
        grammar = getattr(wrapped, "grammar", None)
        if not isinstance(grammar, str) or not grammar:
            grammar = DEFAULT_GRAMMAR if "grammar" in name else None
        if grammar and "grammar" in name:
            # What MemGPT does for a -grammar name: the grammar forces the whole call, so no primed opening.
            for attribute in ("assistant_prefix_extra", "assistant_prefix_extra_first_message"):
                setattr(wrapped, attribute, "")
        stops = getattr(wrapped, "stop_sequences", None)
        description = getattr(wrapped, "description", None) or (type(wrapped).__doc__ or "").strip().split("\n")[0]
        self.description = str(description)
        self.grammar = grammar
        self.stop_sequences = tuple(stops) if isinstance(stops, (tuple, list)) and stops else TURN_MARKERS
        self.inner_thoughts_in_params = bool(getattr(wrapped, "inner_thoughts_in_params", True))
        self._first_message = getattr(wrapped, "supports_first_message", False) is True
        self.needs_chat_template = False  # MemGPT never had model templates

    @classmethod
    def make(cls, registered: Any, *, name: str, distribution: str = "") -> Wrapper:
        """A fresh wrapper from what a plugin registered: a class (made with no arguments) or an instance (a shallow
        copy, so that what the adapter sets on it, a -grammar name's blank prefixes, never reaches another name)."""
        wrapped = registered() if isinstance(registered, type) else copy.copy(registered)
        return cls(wrapped, name=name, distribution=distribution)

    @property
    def module(self) -> str:
        """The module the wrapper's class is defined in (what the conformance kit checks imports of)."""
        return type(self._wrapped).__module__

    def __repr__(self) -> str:
        return f"<Wrapper {self.name} from {self.distribution}: {type(self._wrapped).__name__}>"

    def fit_to(self, backend: Backend) -> None:
        """Hand the wrapper what it needs from the server before the first prompt: the model's chat template, for a
        wrapper that renders it (None when the backend cannot read it). A wrapper's own failure is one line."""
        if not self.needs_chat_template:
            return
        template = None
        if backend.capabilities.chat_template:
            try:
                template = backend.chat_template()
            except MemGPTError:
                raise
            except Exception as exc:
                from memgpt_core.backend import backend_failed

                raise backend_failed(backend, "reading the model's chat template", exc) from exc
        try:
            self._wrapped.use_chat_template(template)
        except MemGPTError:
            raise
        except Exception as exc:
            raise self._failed("reading the model's chat template", exc) from exc

    # -- the two methods ---------------------------------------------------------------------------------------

    def prompt(
        self,
        messages: list[Message],
        functions: list[FunctionSchema],
        *,
        first_message: bool = False,
        written: Mapping[int, str] | None = None,
    ) -> str:
        """The prompt for ``messages``, laid out as this wrapper accepts them."""
        try:
            if self._native:
                prompt = self._wrapped.chat_completion_to_prompt(
                    messages, functions, first_message, written=written or {}
                )
            elif self._first_message:
                prompt = self._wrapped.chat_completion_to_prompt(
                    memgpt_layout(messages), functions, first_message=first_message
                )
            else:
                prompt = self._wrapped.chat_completion_to_prompt(memgpt_layout(messages), functions)
        except MemGPTError:
            raise
        except Exception as exc:
            raise self._failed("building the prompt", exc) from exc
        if not isinstance(prompt, str):
            raise self._failed("building the prompt", TypeError(f"it returned {type(prompt).__name__}, not text"))
        return prompt

    def parse(self, raw: str, functions: list[FunctionSchema], *, first_message: bool = False) -> FunctionCall:
        """The call the model wrote, checked against ``functions``; else ParseError (or TruncatedOutputError)."""
        if self._native:
            # Core's own kind checks its calls already (check_call), and fails only with ParseError by contract.
            try:
                return self._wrapped.read_call(raw, functions=functions, first_message=first_message)
            except ParseError:
                raise
            except Exception as exc:
                raise self._unreadable(raw, exc) from exc
        try:
            if self._first_message:
                response = self._wrapped.output_to_chat_completion_response(raw, first_message=first_message)
            else:
                response = self._wrapped.output_to_chat_completion_response(raw)
        except ParseError:
            raise
        except Exception as exc:  # MemGPT's LLMJSONParsingError, a KeyError, an IndexError on empty text ...
            raise self._unreadable(raw, exc) from exc
        return self._checked(response, raw, functions)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _checked(self, response: Any, raw: str, functions: list[FunctionSchema]) -> FunctionCall:
        from memgpt_core.models import FunctionCall
        from memgpt_core.repair import check_call

        call = response.get("function_call") if isinstance(response, dict) else None
        name = call.get("name") if isinstance(call, dict) else None
        if not isinstance(name, str) or not name:
            raise ParseError(f"the {self.name} wrapper returned no function call", raw)
        arguments: Any = call.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ParseError(f"the arguments of {name} are not JSON ({exc})", raw) from exc
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ParseError(f"the arguments of {name} are not an object", raw)
        thoughts = response.get("content")
        if thoughts is not None and not isinstance(thoughts, str):
            thoughts = json.dumps(thoughts, ensure_ascii=False)
        checked = check_call(name, arguments, functions, raw)
        return FunctionCall(name=name, arguments=checked, inner_thoughts=thoughts)

    def _unreadable(self, raw: str, exc: BaseException) -> ParseError:
        return ParseError(
            f"the {self.name} wrapper from {self.distribution} could not read it ({exception_line(exc)})",
            raw,
            fix="a -grammar wrapper forces a readable call where the backend supports grammars",
        )

    def _failed(self, doing: str, exc: BaseException) -> PluginFailedError:
        return PluginFailedError.of(
            f"the {self.name} wrapper",
            self.distribution,
            doing,
            exc,
            instead="choose another wrapper with --model (`memgpt plugins list` shows them)",
        )


def registration_problem(registered: Any) -> str | None:
    """Why ``registered`` cannot be registered as a wrapper, in words, or None: it needs MemGPT's two methods."""
    missing = [
        method
        for method in ("chat_completion_to_prompt", "output_to_chat_completion_response")
        if not callable(getattr(registered, method, None))
    ]
    return f"it has no {' and no '.join(missing)} method" if missing else None


def declared_name(registered: Any) -> str | None:
    """The name a wrapper class declares for itself (core's kind always does; MemGPT's never did)."""
    name = getattr(registered, "name", None)
    return name if isinstance(name, str) and name else None


def memgpt_layout(messages: list[Message]) -> list[Message]:
    """The messages as MemGPT 0.3 sent them: exactly one system message, first, and every later system message (an
    alert, the core-memory snapshot) as a ``system_alert`` event in a user message."""
    systems: list[str] = []
    rest = list(messages)
    while rest and rest[0].get("role") == "system":
        systems.append(str(rest.pop(0).get("content") or ""))
    laid: list[Message] = [{"role": "system", "content": "\n\n".join(part for part in systems if part)}]
    for message in rest:
        if message.get("role") == "system":
            event = {"type": "system_alert", "message": str(message.get("content") or "")}
            laid.append({"role": "user", "content": json.dumps(event, ensure_ascii=False)})
        else:
            laid.append(dict(message))
    return laid
