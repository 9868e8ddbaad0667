"""The OpenAPI document as the API really behaves: FastAPI's, completed after generation.

FastAPI documents only what it sees in signatures: 200/201 and its own ``{"detail": …}`` 422.
Here every operation gets the bearer scheme it is called with and each error status it can
answer with the real error body (``{"error": {code, message, field}}``), and every text field
and parameter the pattern the request guard enforces (api.text_rules), so a generated client or
a fuzzer knows what will be refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from usefirst.api.guard import API_PREFIX
from usefirst.api.text_rules import LINE_PATTERN, TEXT_PATTERN

SECURITY_SCHEME = "bearerAuth"
ERROR_SCHEMA_REF = {"$ref": "#/components/schemas/ErrorBody"}

ERROR_SCHEMAS: dict[str, Any] = {
    "Error": {
        "title": "Error",
        "type": "object",
        "required": ["code", "message"],
        "additionalProperties": False,
        "properties": {
            "code": {
                "type": "string",
                "description": "Stable, machine-readable (e.g. `validation_error`).",
            },
            "message": {"type": "string", "description": "For people; may change."},
            "field": {
                "type": "string",
                "description": "The request field, parameter or header at fault, if one is.",
            },
        },
    },
    "ErrorBody": {
        "title": "ErrorBody",
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {"$ref": "#/components/schemas/Error"}},
    },
}

ERROR_DESCRIPTIONS = {
    "401": "No API key, or not a valid one (`unauthenticated`).",
    "403": "The key is valid but not allowed to do this (`forbidden`).",
    "404": "The object, or one the request names, does not exist or is not the caller's.",
    "409": "The request conflicts with the object's state or reuses an Idempotency-Key.",
    "413": "The body is larger than this endpoint accepts (`payload_too_large`).",
    "422": "A field, parameter or header is not valid; `field` names it.",
    "429": "Too many failed authentications from this client; see `Retry-After`.",
    "500": "An internal error; nothing was committed (`internal_error`).",
}

METHODS = ("get", "put", "post", "delete", "patch")


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    if not path.startswith(API_PREFIX):
        return ["500"]
    statuses = ["401", "403", "404", "422", "429", "500"]
    if method != "get":
        statuses.append("409")
    if "requestBody" in operation:
        statuses.append("413")
    return sorted(statuses)


def _with_text_rule(schema: Any, pattern: str) -> None:
    """Give every string schema without a shape of its own the text rule's pattern."""
    if isinstance(schema, list):
        for item in schema:
            _with_text_rule(item, pattern)
        return
    if not isinstance(schema, dict):
        return
    if (
        schema.get("type") == "string"
        and not {"pattern", "enum", "const", "format"} & schema.keys()
    ):
        schema["pattern"] = pattern
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            for item in value.values():
                _with_text_rule(item, pattern)
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties", "not"):
            _with_text_rule(value, pattern)


def _referenced(schema: Any, found: set[str]) -> None:
    if isinstance(schema, dict):
        reference = schema.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/components/schemas/"):
            found.add(reference.rsplit("/", 1)[-1])
        for value in schema.values():
            _referenced(value, found)
    elif isinstance(schema, list):
        for item in schema:
            _referenced(item, found)


def complete(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(ERROR_SCHEMAS)
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A platform or merchant API key, or an operator's API token: "
                "`Authorization: Bearer <key>`."
            ),
        }
    }
    request_schemas: set[str] = set()
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            operation["security"] = [{SECURITY_SCHEME: []}] if path.startswith(API_PREFIX) else []
            for parameter in operation.get("parameters", []):
                _with_text_rule(parameter.get("schema"), LINE_PATTERN)
            body = operation.get("requestBody")
            if body is not None:
                _referenced(body, request_schemas)
                for content in body.get("content", {}).values():
                    _with_text_rule(content.get("schema"), TEXT_PATTERN)
            responses = operation.setdefault("responses", {})
            for status in _error_statuses(path, method, operation):
                responses[status] = {
                    "description": ERROR_DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
                }
    # Models reached from request bodies, nested ones included.
    pending = set(request_schemas)
    while pending:
        name = pending.pop()
        nested: set[str] = set()
        _referenced(schemas.get(name), nested)
        pending |= nested - request_schemas
        request_schemas |= nested
    for name in request_schemas - set(ERROR_SCHEMAS):
        _with_text_rule(schemas.get(name), TEXT_PATTERN)
    metrics = document.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"] = {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
        for status in ("401", "404"):
            metrics["responses"][status] = {
                "description": ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
            }
    return document


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
