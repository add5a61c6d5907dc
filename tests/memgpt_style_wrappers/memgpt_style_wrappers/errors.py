"""The package's own errors, shaped like MemGPT's ``memgpt/errors.py`` (plain ``Exception`` subclasses)."""


class LLMError(Exception):
    """Something went wrong with what the model produced."""


class LLMJSONParsingError(LLMError):
    """The model's output could not be read as the JSON function call the wrapper asked for."""

    def __init__(self, message="The model's JSON output could not be parsed"):
        self.message = message
        super().__init__(message)
