"""``GET /ui``: the dashboard — counts per state, a paged jobs table with
filters, a job page with its details, results (large ones as downloads),
failed attempts, steps, history and a live progress bar, cancel and retry;
it reads at phone width. One static page with a
small script, no build step; it calls the same API with the key it is given
(kept in the browser's local storage)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

PAGE = Path(__file__).resolve().parents[1] / "ui" / "index.html"

router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def dashboard() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(), headers={"Cache-Control": "no-cache"})


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui")
