"""users: a read-only directory of customers (in memory, enough for the example)."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

USERS = {"1": {"id": "1", "name": "Ada"}, "2": {"id": "2", "name": "Grace"}}


async def get_user(request: Request) -> JSONResponse:
    user = USERS.get(request.path_params["id"])
    return JSONResponse(user or {"error": "no such user"}, status_code=200 if user else 404)


app = Starlette(routes=[Route("/users/{id}", get_user)])
