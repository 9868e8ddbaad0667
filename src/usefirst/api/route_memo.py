"""The app's routing with its answer remembered for the paths without parameters.

FastAPI picks a request's route by asking each of the app's routes in turn whether it matches
(an included router asks each of its own): the first that matches fully is taken. For a path
without parameters (``POST /v1/checkouts``) the answer is the same for every request with that
method and path as long as the routes do not change, yet every request asked some twenty routes
again (about 6 % of a checkout's CPU in process). :class:`RememberedRoutes` remembers which of
the app's routes took a (method, root path, path) the first time, and from then on asks that
route alone, then selects it exactly as FastAPI's router does (the same scope, the same
handling): the route that would have answered is the one that answers.

What is remembered is bounded: only full matches (an allowed method), only routes whose match
has no path parameters, and it is forgotten whenever the app's routes change (FastAPI's own
routes version). Anything else (a path with parameters, a 404, a 405, a redirect, websockets,
lifespan) goes through FastAPI's router unchanged.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from fastapi.routing import APIRouter, _apply_router_form_limits, _IncludedRouter, _update_scope
from fastapi.telemetry._api import _route_selected
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

# (method, root path, path) -> (the routes' version, the index of the route that took it)
Remembered = dict[tuple[str, str, str], tuple[int, int]]
# At most this many (method, path) answers are kept (the API has far fewer static paths).
KEPT = 512
_OWN_VERSION = attrgetter("_routes_version")


class RememberedRoutes:
    """The router's middleware stack (``router.middleware_stack``) with the remembered fast
    path in front of it; see the module docstring."""

    def __init__(self, router: APIRouter, inner: ASGIApp) -> None:
        self.router = router
        self.inner = inner
        self.remembered: Remembered = {}
        # Every router FastAPI's routes version adds up (the app's and the ones included in
        # it, however deep), each one's own version when last seen, and their sum.
        self._routers: list[APIRouter] | None = None
        self._own_versions: list[int] = []
        self._version = 0

    def routes_version(self) -> int:
        """FastAPI's routes version of the router (``_get_routes_version``: the sum of its own
        and every included router's own version), walked again only when one of those
        routers' own versions moved. Including a router, or adding a route, moves the version
        of the router it is added to; a request asks one flat list instead of walking some
        twenty routers and two hundred routes."""
        routers = self._routers
        if routers is None or list(map(_OWN_VERSION, routers)) != self._own_versions:
            routers = self._routers = _reachable(self.router)
            self._own_versions = list(map(_OWN_VERSION, routers))
            self._version = self.router._get_routes_version()
        return self._version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        router = self.router
        key = (scope["method"], scope.get("root_path", ""), scope["path"])
        version = self.routes_version()
        found = self.remembered.get(key)
        if found is not None and found[0] == version:
            route = router.routes[found[1]]
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                _apply_router_form_limits(scope, router.form_limits)
                if "router" not in scope:
                    scope["router"] = router
                _update_scope(scope, child_scope)
                _route_selected(
                    scope=scope,
                    path=getattr(route, "path_format", None),
                    mount=isinstance(route, Mount),
                )
                await route.handle(scope, receive, send)
                return
            await self.inner(scope, receive, send)
            return
        before: dict[str, Any] = dict(scope)
        await self.inner(scope, receive, send)
        selected = scope.get("route")
        if isinstance(selected, Route) and not selected.param_convertors:
            self._remember(key, version, before)

    def _remember(self, key: tuple[str, str, str], version: int, scope: dict[str, Any]) -> None:
        """Which of the app's routes takes ``scope`` (the request as it reached the router,
        asked as the router asks): the first full match."""
        for index, route in enumerate(self.router.routes):
            match, _child_scope = route.matches(scope)
            if match == Match.FULL:
                if isinstance(route, Mount):
                    return
                if len(self.remembered) >= KEPT:
                    self.remembered.clear()
                self.remembered[key] = (version, index)
                return


def _reachable(router: APIRouter) -> list[APIRouter]:
    """The router and every router included in it, once each (as FastAPI's version walks)."""
    found: list[APIRouter] = []
    seen: set[int] = set()
    waiting = [router]
    while waiting:
        current = waiting.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        waiting.extend(
            route.original_router for route in current.routes if isinstance(route, _IncludedRouter)
        )
    return found


def remember_routes(router: APIRouter) -> None:
    """Put :class:`RememberedRoutes` in front of ``router`` (call once its routes are added).
    A router with middleware of its own is left as it is."""
    if router.middleware_stack != router.app:
        return
    router.middleware_stack = RememberedRoutes(router, router.middleware_stack)
