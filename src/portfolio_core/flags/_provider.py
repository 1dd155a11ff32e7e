"""An OpenFeature provider over `Flags` (the ``config`` extra)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from portfolio_core.flags._flags import DISABLED, Evaluation, FlagContext, Flags, _Flag, resolve

__all__ = ["ConfigStoreProvider"]

_REASONS = {r.value: r for r in Reason}
_NO_ATTRIBUTES: Mapping[str, Any] = {}
_METADATA = Metadata(name="portfolio-core ConfigStore")
_CODES = {c.value: c for c in ErrorCode}


class ConfigStoreProvider(AbstractProvider):
    """Serves OpenFeature clients from flags kept in a ConfigStore.

    Give it a started `Flags` (changes in the store reach
    evaluations without a restart). The evaluation context's ``targeting_key`` drives
    rollouts; its attribute ``tenant`` (else the current tenant) is the tenant rules match.
    Integer and float resolutions both read ``number`` flags.
    """

    def __init__(self, flags: Flags) -> None:
        super().__init__()
        self.flags = flags

    def get_metadata(self) -> Metadata:
        return _METADATA

    def _details(
        self, key: str, default: Any, context: EvaluationContext | None, kind: str
    ) -> FlagResolutionDetails[Any]:
        tenant: Any
        if context is None:
            target, tenant, attrs = None, None, _NO_ATTRIBUTES
        else:
            target, attrs = context.targeting_key, context.attributes
            tenant = attrs.get("tenant")
            if tenant.__class__ is not str:
                tenant = None
        flag = self.flags._flags.get(key)  # inlined Flags.outcome: one call less
        if flag.__class__ is _Flag and flag.kind == kind:
            found: Any = resolve(flag, target, tenant, attrs)
            found.hits += 1
        else:
            found = None
        if found is None:  # unknown, malformed or of another type: say why
            result: Evaluation = self.flags.evaluate(
                key, default, FlagContext(target, tenant, attrs), kind=kind
            )
            return FlagResolutionDetails(
                value=result.value,
                reason=_REASONS.get(result.reason, Reason.UNKNOWN),
                error_code=_CODES.get(result.error_code) if result.error_code else None,
                error_message=result.error_message,
            )
        if found.reason is DISABLED:
            return FlagResolutionDetails(value=default, reason=Reason.DISABLED)
        if kind == "object":
            return FlagResolutionDetails(
                value=copy.deepcopy(found.value),
                variant=found.variant,
                reason=_REASONS[found.reason],
            )
        details = found.details
        if details is None:  # one immutable answer per outcome, built once
            details = found.details = FlagResolutionDetails(
                value=found.value, variant=found.variant, reason=_REASONS[found.reason]
            )
        return details  # type: ignore[no-any-return]

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._details(flag_key, default_value, evaluation_context, "boolean")

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._details(flag_key, default_value, evaluation_context, "string")

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._details(flag_key, default_value, evaluation_context, "number")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._details(flag_key, default_value, evaluation_context, "number")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._details(flag_key, default_value, evaluation_context, "object")
