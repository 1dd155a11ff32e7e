"""An OpenFeature provider over :class:`~portfolio_core.flags.Flags` (the ``config`` extra)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from portfolio_core.flags._flags import Evaluation, FlagContext, Flags

__all__ = ["ConfigStoreProvider"]

_REASONS = {r.value: r for r in Reason}
_CODES = {c.value: c for c in ErrorCode}


class ConfigStoreProvider(AbstractProvider):
    """Serves OpenFeature clients from flags kept in a ConfigStore.

    Give it a started :class:`~portfolio_core.flags.Flags` (changes in the store reach
    evaluations without a restart). The evaluation context's ``targeting_key`` drives
    rollouts; its attribute ``tenant`` (else the current tenant) is the tenant rules match.
    Integer and float resolutions both read ``number`` flags.
    """

    def __init__(self, flags: Flags) -> None:
        super().__init__()
        self.flags = flags

    def get_metadata(self) -> Metadata:
        return Metadata(name="portfolio-core ConfigStore")

    def _details(
        self, key: str, default: Any, context: EvaluationContext | None, kind: str
    ) -> FlagResolutionDetails[Any]:
        if context is None:
            ours = None
        else:
            attrs = context.attributes
            tenant = attrs.get("tenant")
            ours = FlagContext(
                context.targeting_key, tenant if isinstance(tenant, str) else None, attrs
            )
        result: Evaluation = self.flags.evaluate(key, default, ours, kind=kind)
        return FlagResolutionDetails(
            value=result.value,
            variant=result.variant,
            reason=_REASONS.get(result.reason, Reason.UNKNOWN),
            error_code=_CODES.get(result.error_code) if result.error_code else None,
            error_message=result.error_message,
        )

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
