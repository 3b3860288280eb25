"""products: the catalogue (in memory, enough for the example)."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PRODUCTS = [{"sku": "mug", "price": 8}, {"sku": "tee", "price": 20}]


async def list_products(request: Request) -> JSONResponse:
    return JSONResponse(PRODUCTS)


app = Starlette(routes=[Route("/products", list_products)])
