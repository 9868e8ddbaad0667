"""The money-moving POSTs that a peak day sends thousands of a second (checkout, payment), with
the request handled once: the body the request guard already read and checked is validated
straight from its bytes, and the endpoint is called with its runtime, caller and idempotent call
without FastAPI's dependency solving (six resolutions per checkout, the body parsed to Python
objects a second time and then validated from them).

The route is an ordinary FastAPI route: its endpoint, parameters and OpenAPI document are the
ones FastAPI makes from the endpoint's signature, and any request that is not the plain case
goes through FastAPI's own handler, so that every refusal is answered exactly as before: a body
that is missing, not ``application/json`` or does not validate; an ``Idempotency-Key`` that is
repeated or breaks its pattern; dependency overrides; FastAPI's own telemetry switched on. The
plain case is a JSON body that validates: ``model_validate_json`` takes what
``model_validate(json.loads(...))`` takes, to the same values (the request guard has already
refused duplicate keys, non-finite and over-long numbers and invalid UTF-8, where the two
parsers could differ), and a body it refuses is handed to FastAPI's handler, which refuses it
with its usual message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute, _effective_route_context_var
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from usefirst.api.deps import IdempotentCall, get_idempotent_call, get_principal, runtime_dependency
from usefirst.api.text_rules import IDEMPOTENCY_KEY_PATTERN
from usefirst.kit.idempotency import MAX_KEY_LENGTH

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = Callable[..., Any]

_KEY_PATTERN = re.compile(IDEMPOTENCY_KEY_PATTERN)
_RUNTIME, _PRINCIPAL, _CALL = "runtime", "principal", "call"
_PROVIDED = {runtime_dependency: _RUNTIME, get_principal: _PRINCIPAL, get_idempotent_call: _CALL}


class KeyedJsonRoute(APIRoute):
    """A route whose endpoint takes one JSON body model and only the runtime, the caller and
    the idempotent call (``RuntimeDep``, ``PrincipalDep``, ``IdempotentCallDep``): see the
    module docstring. An endpoint of any other shape is served by FastAPI alone."""

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        # As FastAPI's own handler: a route included in a router or the app is built for that
        # inclusion (its dependencies, its app's overrides).
        route: Any = self
        included = _effective_route_context_var.get()
        if included is not None and included.original_route is self:
            route = included
        binding = _binding(route)
        if binding is None:
            return standard
        model, body_name, provided = binding
        endpoint = route.endpoint
        overrides = route.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if get_telemetry_data() is not None or (
                overrides is not None and getattr(overrides, "dependency_overrides", None)
            ):
                return await standard(request)
            scope = request.scope
            principal = scope.get("state", {}).get("principal")
            headers = request.headers
            content_type = headers.get("content-type")
            keys = headers.getlist("idempotency-key")
            if (
                principal is None
                or content_type is None
                or content_type.split(";", 1)[0].strip().lower() != "application/json"
                or len(keys) > 1
                or (keys and not _is_idempotency_key(keys[0]))
            ):
                return await standard(request)
            raw = await request.body()  # read by the request guard; Starlette keeps it
            if not raw:
                return await standard(request)
            try:
                body = model.model_validate_json(raw)
            except ValidationError:
                return await standard(request)
            runtime = request.app.state.runtime
            values: dict[str, Any] = {body_name: body}
            for name, kind in provided:
                if kind == _RUNTIME:
                    values[name] = runtime
                elif kind == _PRINCIPAL:
                    values[name] = principal
                else:
                    values[name] = IdempotentCall(
                        runtime=runtime,
                        request=request,
                        principal=principal,
                        idempotency_key=keys[0] if keys else None,
                    )
            response = await run_in_threadpool(endpoint, **values)
            if not isinstance(response, Response):
                raise TypeError(f"{endpoint.__qualname__} must return a Response")
            return response

        return handler


def _is_idempotency_key(value: str) -> bool:
    # The header's declared constraints (api.deps.IdempotencyKey), checked as pydantic does.
    return 1 <= len(value) <= MAX_KEY_LENGTH and _KEY_PATTERN.search(value) is not None


def _binding(
    route: Any,
) -> tuple[type[BaseModel], str, list[tuple[str, str]]] | None:
    """(the body's model, its parameter's name, the other parameters and what each is), or
    None when the endpoint takes anything else."""
    dependant = route.dependant
    if (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.request_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or len(dependant.body_params) != 1
        or route._embed_body_fields
    ):
        return None
    body_field = dependant.body_params[0]
    model = body_field.field_info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    provided: list[tuple[str, str]] = []
    for dependency in dependant.dependencies:
        kind = _PROVIDED.get(dependency.call)
        if kind is None or dependency.name is None:
            return None
        provided.append((dependency.name, kind))
    return model, body_field.name, provided


def keyed_post(router: APIRouter, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """``@router.post(path, **options)`` served by :class:`KeyedJsonRoute`."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            path, endpoint, methods=["POST"], route_class_override=KeyedJsonRoute, **options
        )
        return endpoint

    return register
