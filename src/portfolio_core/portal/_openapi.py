"""An OpenAPI 3.1 document generated from the served entries' protocols.

Each served method of each entry becomes ``POST /v1/entries/{entry}/{method}`` whose request
body schema is the JSON schema of its arguments (from the same pydantic validators that check
requests) and whose response is the JSON schema of its result (or, for iterate methods, JSON
lines). Every error response is an RFC 9457 problem document.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from portfolio_core.wire import (
    API_PREFIX,
    PROBLEM_MEDIA_TYPE,
    CallKind,
    MethodSpec,
    arguments_validator,
)
from portfolio_core.wire._codec import type_adapter

if TYPE_CHECKING:
    from portfolio_core.portal._app import Portal

__all__ = ["openapi_document"]

_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; 'type' names the port error class.",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "required": ["type", "status"],
}


@cache
def _schemas(spec: MethodSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    request = arguments_validator(spec).json_schema(ref_template="#/components/schemas/{model}")
    try:
        result = type_adapter(spec.result).json_schema(
            ref_template="#/components/schemas/{model}", mode="serialization"
        )
    except Exception:  # a result type without a JSON schema: describe it as any JSON value
        result = {}
    return request, result


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", None) or {}
    components.update(defs)
    return schema


def openapi_document(portal: Portal, entries: list[str]) -> dict[str, Any]:
    """The document for ``entries`` (the ones the caller may see)."""
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {"Problem": _PROBLEM}
    for name in entries:
        served = portal.dispatcher.entry(name)
        for method, bound in served.methods.items():
            spec = bound.spec
            request, result = _schemas(spec)
            request = _hoist(dict(request), components)
            result = _hoist(dict(result), components)
            if spec.kind is CallKind.ITERATE:
                ok = {
                    "description": "One JSON document per line: {'item': ...} items, then "
                    "{'end': true} or {'error': <problem>}",
                    "content": {"application/jsonl": {"schema": {"type": "object"}}},
                }
            elif spec.kind is CallKind.SUBSCRIBE:
                continue  # only over the WebSocket endpoint
            else:
                ok = {
                    "description": "The result",
                    "content": {"application/json": {"schema": result}},
                }
            problem = {
                "content": {
                    PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
            }
            paths[f"{API_PREFIX}/{name}/{method}"] = {
                "post": {
                    "operationId": f"{name}.{method}",
                    "summary": (spec.doc.splitlines() or [""])[0],
                    "tags": [name],
                    "description": f"{served.port.name}.{method} of entry {name!r}"
                    + (" (read-only)" if spec.read_only else ""),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": request}},
                    },
                    "responses": {
                        "200": ok,
                        "400": {"description": "Invalid input", **problem},
                        "401": {"description": "No valid credentials", **problem},
                        "403": {"description": "Outside the credentials' scopes", **problem},
                        "404": {"description": "Unknown entry or method", **problem},
                        "413": {"description": "Body too large", **problem},
                        "429": {"description": "Rate limited", **problem},
                        "default": {"description": "A port error", **problem},
                    },
                    "security": [{"bearer": []}, {"apiKey": []}] if portal.security.enabled else [],
                }
            }
    return {
        "openapi": "3.1.0",
        "info": {"title": "portfolio-core portal", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
