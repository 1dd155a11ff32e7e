"""The wire format shared by the portal (server) and the remote adapters (clients).

* `methods_of` describes every method of an async port as it crosses the wire (call,
  iterate, subscribe, or local), read once from the protocol;
* `encoder_for`, `dumps`, `loads`, `arguments_validator` and
  `result_validator` turn arguments and results into JSON and back, by declared type;
* `problem_for` and `error_from_problem` carry port errors as RFC 9457 problem
  details that come back as the same exception classes;
* the HTTP paths, header names and JSON-RPC method names below are the protocol's constants.

It imports `portfolio_core.ports` (and pydantic) and nothing above them, so that both
the portal and the ``remote`` adapters may use it. See docs/portal/wire.md.
"""

from __future__ import annotations

from portfolio_core.wire._codec import (
    Encoder,
    arguments_validator,
    check_json,
    decode_tenant,
    dumps,
    encode_tenant,
    encoder_for,
    loads,
    result_validator,
)
from portfolio_core.wire._methods import (
    CallKind,
    MethodSpec,
    Param,
    StreamInspection,
    SubscriptionSpec,
    methods_of,
    served_ports,
)
from portfolio_core.wire._problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_PREFIX,
    ProblemType,
    error_from_problem,
    problem_for,
    problem_types,
)

__all__ = [
    "API_PREFIX",
    "CREDIT",
    "CANCEL",
    "CallKind",
    "Encoder",
    "ITEM",
    "OPENED",
    "JSONL_MEDIA_TYPE",
    "MethodSpec",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_PREFIX",
    "Param",
    "ProblemType",
    "StreamInspection",
    "SubscriptionSpec",
    "TENANT_HEADER",
    "TENANT_PARAM",
    "CREDIT_PARAM",
    "WS_PATH",
    "arguments_validator",
    "check_json",
    "decode_tenant",
    "dumps",
    "encode_tenant",
    "encoder_for",
    "error_from_problem",
    "loads",
    "methods_of",
    "problem_for",
    "problem_types",
    "result_validator",
    "served_ports",
]

API_PREFIX = "/v1/entries"
"""``POST {API_PREFIX}/{entry}/{method}`` calls a method; ``GET {API_PREFIX}/{entry}``
describes an entry; ``GET {API_PREFIX}`` lists the entries the caller may see."""
WS_PATH = "/v1/ws"
"""The WebSocket endpoint speaking JSON-RPC 2.0."""
TENANT_HEADER = "x-portfolio-tenant"
"""The header carrying the caller's current tenant (JSON from `encode_tenant`)."""
JSONL_MEDIA_TYPE = "application/jsonl"
"""Items of an ``ITERATE`` method over HTTP: one JSON document per line."""
TENANT_PARAM = "@tenant"
"""In a JSON-RPC request's params: the caller's tenant (an object)."""
CREDIT_PARAM = "@credit"
"""In a JSON-RPC request's params for an iterate or subscribe method: the initial credit."""
ITEM = "portal.item"
"""Server notification: ``{"call": id, "items": [...]}``, items of an open iteration."""
CREDIT = "portal.credit"
"""Client notification: ``{"call": id, "credit": n}`` lets the server send ``n`` more items."""
CANCEL = "portal.cancel"
"""Client notification: ``{"call": id}`` closes an iteration or subscription."""
OPENED = "portal.opened"
"""Server notification: ``{"call": id}``, the subscription asked for by that call is open."""
