"""One route that writes a note into the state directory and answers with it, escaped by
MarkupSafe (a dependency from the lock, not one of Pilothouse's)."""

from __future__ import annotations

import os
from pathlib import Path

from markupsafe import escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def notes(request: Request) -> JSONResponse:
    state = Path(os.environ["PILOTHOUSE_SERVICE__STATE_DIR"])
    note = state / "note.txt"
    note.write_text("<b>kept</b>")
    return JSONResponse({"note": str(escape(note.read_text())), "where": str(note)})


app = Starlette(routes=[Route("/notes", notes)])
