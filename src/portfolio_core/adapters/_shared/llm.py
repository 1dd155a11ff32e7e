"""Request checks shared by the LLM adapters, so they refuse the same input with the same
errors."""

from __future__ import annotations

from collections.abc import Sequence

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.llm import CompletionOptions, Message

__all__ = ["check_request"]


def check_request(messages: Sequence[Message], opts: CompletionOptions) -> tuple[Message, ...]:
    """``messages`` as a tuple, once the request is one an LLM can answer.

    Raises:
        InvalidInputError: the conversation is empty, or an option is out of range (see
            [CompletionOptions.check][portfolio_core.ports.llm.CompletionOptions.check]; the
            field is named).
    """
    if not messages:
        raise InvalidInputError("the conversation is empty", field="messages")
    opts.check()
    return tuple(messages)
