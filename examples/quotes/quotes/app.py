"""The API: FastAPI routes only; probes, metrics, logs and drain come from `pilothouse serve`."""

from fastapi import FastAPI

QUOTES = [
    {"id": 1, "text": "Make it work, make it right, make it fast.", "by": "Kent Beck"},
    {"id": 2, "text": "Simple things should be simple.", "by": "Alan Kay"},
]

app = FastAPI(title="quotes")


@app.get("/quotes")
async def quotes() -> list[dict[str, object]]:
    return QUOTES
