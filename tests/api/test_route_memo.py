"""The app's routing with its answer remembered (api/route_memo.py) answers every request with
the route FastAPI's own router picks: first match wins, methods, path parameters, 404 and 405
unchanged, and routes added later are seen."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from usefirst.api.route_memo import RememberedRoutes, remember_routes


def _app() -> tuple[FastAPI, RememberedRoutes]:
    app = FastAPI()
    first = APIRouter()
    second = APIRouter()

    @first.get("/v1/things/{thing_id}")
    def a_thing(thing_id: str) -> dict[str, str]:
        return {"route": "thing", "id": thing_id}

    @first.post("/v1/things")
    def new_thing() -> dict[str, str]:
        return {"route": "first"}

    # The same path and method again, later: FastAPI never picks it (the first match wins).
    @second.post("/v1/things")
    def shadowed() -> dict[str, str]:
        return {"route": "second"}

    @second.get("/v1/things")
    def list_things() -> dict[str, str]:
        return {"route": "list"}

    app.include_router(first)
    app.include_router(second)
    remember_routes(app.router)
    remembered = app.router.middleware_stack
    assert isinstance(remembered, RememberedRoutes)
    return app, remembered


def test_remembered_routes_answer_as_fastapi_does() -> None:
    app, remembered = _app()
    client = TestClient(app)
    for _ in range(3):
        assert client.post("/v1/things").json() == {"route": "first"}
        assert client.get("/v1/things").json() == {"route": "list"}
        assert client.get("/v1/things/7").json() == {"route": "thing", "id": "7"}
        assert client.get("/v1/things/8").json() == {"route": "thing", "id": "8"}
        assert client.delete("/v1/things").status_code == 405
        assert client.get("/v1/nothing").status_code == 404
    # Only the two static (method, path) pairs are remembered: no path with parameters, no
    # refusal.
    assert sorted(key[:1] + key[2:] for key in remembered.remembered) == [
        ("GET", "/v1/things"),
        ("POST", "/v1/things"),
    ]


def test_a_route_added_later_is_seen() -> None:
    app, remembered = _app()
    client = TestClient(app)
    assert client.get("/v1/things").json() == {"route": "list"}
    assert client.get("/v1/things").json() == {"route": "list"}

    late = APIRouter()

    @late.put("/v1/things")
    def replace_things() -> dict[str, str]:
        return {"route": "put"}

    app.include_router(late)
    assert client.put("/v1/things").json() == {"route": "put"}
    assert client.get("/v1/things").json() == {"route": "list"}
    assert client.post("/v1/things").json() == {"route": "first"}
    assert client.put("/v1/things").json() == {"route": "put"}
    assert sorted(key[0] for key in remembered.remembered) == ["GET", "POST", "PUT"]


def test_a_route_added_to_an_included_router_later_is_seen() -> None:
    """An included router's own routes version moves (not the app's): the remembered answer
    is forgotten as FastAPI's summed version says, without walking the routers per request."""
    app = FastAPI()
    inner = APIRouter()
    outer = APIRouter()

    @inner.get("/v1/deep")
    def deep() -> dict[str, str]:
        return {"route": "deep"}

    outer.include_router(inner)
    app.include_router(outer)
    remember_routes(app.router)
    remembered = app.router.middleware_stack
    assert isinstance(remembered, RememberedRoutes)
    client = TestClient(app)
    assert client.get("/v1/deep").json() == {"route": "deep"}
    assert client.get("/v1/deep").json() == {"route": "deep"}
    before = remembered.routes_version()
    assert before == app.router._get_routes_version()
    assert client.post("/v1/deep").status_code == 405

    @inner.post("/v1/deep")
    def new_deep() -> dict[str, str]:
        return {"route": "new deep"}

    assert remembered.routes_version() == app.router._get_routes_version() > before
    assert client.post("/v1/deep").json() == {"route": "new deep"}
    assert client.post("/v1/deep").json() == {"route": "new deep"}
    assert client.get("/v1/deep").json() == {"route": "deep"}
