"""`Configurable`: ``from_config`` for the adapters whose config fields are exactly their
constructor's keywords."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import BaseModel

__all__ = ["Configurable"]


class Configurable:
    """Base of an adapter that a manifest builds by passing its config through:
    ``from_config(config)`` is ``cls(**config.model_dump())``.

    The subclass sets ``config_model``, a pydantic model whose fields are keywords of its
    constructor. An adapter whose config needs translating, or that takes other adapters
    (``uses``), defines its own ``from_config`` instead.
    """

    config_model: ClassVar[type[BaseModel]]

    @classmethod
    def from_config(cls, config: BaseModel) -> Self:
        """The adapter ``config`` describes (the constructor's errors pass through)."""
        return cls(**config.model_dump())
