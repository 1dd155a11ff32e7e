"""What a flag is, as stored in the config store (one JSON object per flag key)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["FlagCondition", "FlagDefinition", "FlagRule", "FlagType"]

FlagType = Literal["boolean", "string", "number", "object"]
Scalar = str | int | float | bool


class FlagCondition(BaseModel):
    """When a rule applies: every given part must hold (an empty condition always holds).

    ``tenant``: the evaluation's tenant is one of these. ``attributes``: for each named
    attribute of the evaluation context, its value is one of the listed values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: list[str] | None = None
    attributes: dict[str, list[Scalar]] = Field(default_factory=dict)


class FlagRule(BaseModel):
    """Serve ``variant`` when ``when`` holds -- to ``percentage`` percent of targeting keys
    (chosen by a stable hash of the flag and the key, so a key that is in stays in as the
    percentage grows)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: FlagCondition = Field(default_factory=FlagCondition)
    variant: str
    percentage: float = Field(100.0, ge=0, le=100)


_TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "string": (str,),
    "number": (int, float),
    "object": (dict, list),
}


class FlagDefinition(BaseModel):
    """A feature flag: its type, named variants, the variant served by default, and rules
    tried in order (the first that applies decides).

    Register it as the schema of the flags' key prefix (``schemas: {"flags.":
    "portfolio_core.flags:FlagDefinition"}``) so that a store refuses a malformed flag at
    apply time, naming the key and the reason.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FlagType
    variants: dict[str, Any] = Field(min_length=1)
    default_variant: str
    enabled: bool = True
    rules: list[FlagRule] = Field(default_factory=list)
    salt: str | None = None
    """Mixed into the rollout hash (default: the flag key); change it to reshuffle."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        allowed = _TYPE_CHECKS[self.type]
        for name, value in self.variants.items():
            if not isinstance(value, allowed) or (self.type == "number" and type(value) is bool):
                raise ValueError(
                    f"variant {name!r} is {type(value).__name__}, not a {self.type} value"
                )
        if self.default_variant not in self.variants:
            raise ValueError(
                f"default_variant {self.default_variant!r} is not one of the variants "
                f"{sorted(self.variants)}"
            )
        for i, rule in enumerate(self.rules):
            if rule.variant not in self.variants:
                raise ValueError(
                    f"rules[{i}] serves variant {rule.variant!r}, which is not one of "
                    f"{sorted(self.variants)}"
                )
        return self
