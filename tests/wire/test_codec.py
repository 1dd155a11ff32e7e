"""The wire's JSON: what goes out comes back equal and of the same type, what cannot go out
is refused naming the field, and the depth check agrees with a naive one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.event_store import EventQuery, NewEvent, RecordedEvent, StreamState
from portfolio_core.wire import (
    arguments_validator,
    dumps,
    encoder_for,
    loads,
    methods_of,
    result_validator,
)
from tests.support.strategies import json_values


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_round_trips_with_its_types(value: Any) -> None:
    encoded = encoder_for(Any)(value, "value")
    assert same(loads(dumps(encoded)), value)


@pytest.mark.parametrize(
    "bad", [(1, 2), {1, 2}, b"x", float("nan"), float("inf"), {1: "x"}, object(), "a\udc80"]
)
def test_what_json_cannot_carry_is_refused_naming_the_field(bad: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        encoder_for(Any)({"ok": [1, bad]}, "value")
    assert info.value.field == "value"


def test_value_objects_round_trip_through_the_servers_validator() -> None:
    spec = methods_of("event_store")["append"]
    events = [NewEvent("E", {"a": [1, 2.5]}, {"m": None}, correlation_id="c")]
    payload = {
        "stream": "s",
        "events": encoder_for(spec.params[1].hint)(events, "events"),
        "expected_version": encoder_for(spec.params[2].hint)(StreamState.NO_STREAM, "x"),
    }
    args = arguments_validator(spec).validate_json(dumps(payload), strict=True)
    assert args == {"stream": "s", "events": events, "expected_version": StreamState.NO_STREAM}
    query = methods_of("event_store")["query"]
    since = datetime(2024, 5, 1, 12, tzinfo=UTC)
    q = EventQuery(types=frozenset({"A", "B"}), since=since, data={"k": True})
    got = arguments_validator(query).validate_json(
        dumps({"query": encoder_for(EventQuery)(q, "query")}), strict=True
    )
    assert got["query"] == q


def test_results_come_back_as_value_objects() -> None:
    event = RecordedEvent("i", "s", "T", {"x": 1}, {}, 3, 7, datetime(2024, 1, 1, tzinfo=UTC))
    back = result_validator(list[RecordedEvent])(loads(dumps([event])))
    assert back == [event]
    assert isinstance(back[0], RecordedEvent)


def test_a_tenant_round_trips_as_header_safe_json() -> None:
    from portfolio_core.ports import TenantContext
    from portfolio_core.wire import decode_tenant, encode_tenant

    ctx = TenantContext("acmé", {"tier": "gold", "limits": [1, 2]})
    text = encode_tenant(ctx)
    assert text.isascii()
    assert decode_tenant(text) == ctx
    assert decode_tenant(encode_tenant(TenantContext("t"))) == TenantContext("t")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "the tenant is not valid JSON"),
        ('["t"]', "the tenant must be {'tenant_id': str, ...}"),
        ('{"tenant_id": 7}', "the tenant must be {'tenant_id': str, ...}"),
        ('{"tenant_id": "t", "config": []}', "the tenant has unknown or malformed fields"),
        ('{"tenant_id": "t", "role": "admin"}', "the tenant has unknown or malformed fields"),
    ],
)
def test_a_malformed_tenant_is_refused_as_invalid_input(text: str, message: str) -> None:
    from portfolio_core.wire import decode_tenant

    with pytest.raises(InvalidInputError, match=re.escape(message)) as info:
        decode_tenant(text)
    assert info.value.field == "tenant"


def test_dumps_writes_sets_and_mappings_and_names_what_it_cannot() -> None:
    from types import MappingProxyType

    assert loads(dumps({"s": {3}, "m": MappingProxyType({"a": 1})})) == {"s": [3], "m": {"a": 1}}
    with pytest.raises(Exception, match="object is not JSON serialisable"):
        dumps(object())
