"""The operator's dashboard: one page and its assets, served by the API itself (no CDN).

The page reads the same endpoints as the CLI (`/status`, `/status/history`, `/jobs`,
`/admin/*`) with the key the user types in, so it is read-only unless that key is an
operator's. It builds every element from text, never from HTML in the data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# Everything the page loads comes from this origin; nothing inline, nothing remote.
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
async def dashboard() -> FileResponse:
    return FileResponse(
        STATIC / "index.html",
        headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"},
    )


def install_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/dashboard/assets", StaticFiles(directory=STATIC), name="dashboard-assets")
