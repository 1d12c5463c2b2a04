"""The base of the API's controllers."""

from __future__ import annotations

from litestar import Controller, Router
from litestar.routes import ASGIRoute, HTTPRoute, WebSocketRoute

_AUTO_OPTIONS = "options_handler"  # the name Litestar gives the OPTIONS handler it adds to every route


class ApiController(Controller):
    """Answers `OPTIONS` with every method of the path.

    Litestar 2 builds a controller's route one handler at a time and keeps the OPTIONS handler made for the first
    build, so `Allow` listed only the first handler's methods (`OPTIONS, POST` on a path that also has GET;
    litestar#4169, fixed in Litestar 3). The routes are rebuilt once complete, which makes a fresh one.
    """

    def as_router(self) -> Router:
        router = super().as_router()
        router.routes = [_with_fresh_options(route) for route in router.routes]
        return router


def _with_fresh_options(route: HTTPRoute | ASGIRoute | WebSocketRoute) -> HTTPRoute | ASGIRoute | WebSocketRoute:
    if not isinstance(route, HTTPRoute):
        return route
    handlers = [handler for handler in route.route_handlers if handler.handler_name != _AUTO_OPTIONS]
    return HTTPRoute(path=route.path, route_handlers=handlers)
