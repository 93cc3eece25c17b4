"""The web app of ``selo serve``: a JSON API, tiles and the single page (FastAPI).

Endpoints (ids, never paths; every error is JSON ``{"error": ..., "status": ...}``)::

    GET  /                                         the page (static/index.html)
    GET  /static/...                               the page's files and vendored Leaflet
    GET  /api/info                                 mode, encoder, method, limits, scenes
    GET  /api/colormap.png                         the legend's colours (JET, 256 x 1)
    GET  /api/scenes/{sid}                         a scene: size, CRS, embedding progress, maps
    GET  /api/scenes/{sid}/tiles/{z}/{x}/{y}.jpg   scene tiles (serve.tiles)
    POST /api/scenes/{sid}/maps                    {"sentence": ...} -> the map's record
    GET  /api/scenes/{sid}/maps                    the scene's sentences (or cases), oldest first
    GET  /api/scenes/{sid}/maps/{mid}              one map's record (computed if needed)
    GET  /api/scenes/{sid}/maps/{mid}/tiles/{z}/{x}/{y}.png?style=jet|gray
    GET  /api/scenes/{sid}/maps/{mid}/regions.geojson   centres and regions (+ annotations)
    GET  /api/scenes/{sid}/maps/{mid}/selo_map.tif      the map as a COG

A collection (``selo serve SCENES...``) also has (serve.mercator: Web Mercator tiles, the
scenes where they are; no basemap)::

    POST /api/search                               {"sentence": ..., "top": 20} -> the hits
                                                   of the whole collection, best first
    GET  /api/mercator/{z}/{x}/{y}.jpg             tiles of every georeferenced scene
    GET  /api/scenes/{sid}/maps/{mid}/mercator/{z}/{x}/{y}.png?style=jet|gray
    GET  /api/scenes/{sid}/maps/{mid}/regions.geojson?lonlat=1   in EPSG:4326

Status codes: each of selo's errors has its own (``http_status`` in :mod:`selo.errors`):
404 unknown scene, map, tile or file; 409 a scene still embedding (or a run folder asked
for a new sentence, or a server of one scene for a collection search); 413 a request
body over 16 KiB; 422 a malformed request (empty or too long sentence, tile coordinates
that are not integers, bad style or top). Anything else is 500 "internal error" with an
id; the server's log has the id with the traceback (the answer never carries the
exception's text: it may name paths).
Map computations run on the state's own threads and are awaited, so tile requests stay
answered while sentences are computed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ...errors import ParameterError, RequestTooLargeError, SeloError, UnknownIdError
from ..options import DEFAULT_TOP
from . import mercator
from .state import MAX_SENTENCE_CHARS, ServeState
from .tiles import TILE, check_style, colormap_png, map_tile

__all__ = ["MAX_BODY", "create_app", "static_dir"]

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # bytes of a POST body
_IMMUTABLE = {"Cache-Control": "private, max-age=3600"}  # ids change with every server start


def static_dir() -> Path:
    """The page's files (package data)."""
    return Path(str(resources.files("selo.selo_tasks.serve").joinpath("static")))


def create_app(state: ServeState, *, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app serving ``state``; requests whose Host header names another host than
    ``allowed_hosts`` get 400 (a guard against DNS rebinding); None allows any."""
    app = FastAPI(title="selo serve", docs_url=None, redoc_url=None, openapi_url=None)
    _errors(app)
    app.add_middleware(_InternalErrors)
    if allowed_hosts is not None:
        app.add_middleware(_HostCheck, allowed=frozenset(allowed_hosts))

    static = static_dir()
    app.mount("/static", StaticFiles(directory=static), name="static")
    version = state.version  # scene tile URLs change with every server start

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/info")
    def info() -> dict:
        ctx = state.ctx
        return {
            "mode": state.mode,
            "encoder": None if ctx is None else ctx.encoder.version,
            "method": None if ctx is None else ctx.method.describe(),
            "max_sentence_chars": MAX_SENTENCE_CHARS,
            "tile_size": TILE,
            "map_cache_bytes": state.maps.max_bytes,
            "scenes": [_scene(s, version) for s in state.scenes.values()],
            "run": state.run_info or None,
            "mercator": _mercator(state, version),
            "skipped": None if state.collection is None else len(state.collection.skipped),
        }

    @app.post("/api/search")
    async def search(request: Request) -> dict:
        body = await _json_body(request)
        if not isinstance(body, dict) or "sentence" not in body:
            raise ParameterError('send {"sentence": "...", "top": 20}')
        sentence = state.check_sentence(body["sentence"])
        found = await run_in_threadpool(state.search, sentence, body.get("top", DEFAULT_TOP))
        return {**found, "warning": state.warning(sentence)}

    @app.get("/api/mercator/{z}/{x}/{y}.jpg")
    def mercator_tile(z: int, x: int, y: int) -> Response:
        _mercator_tile_exists(z, x, y, state.mercator_zoom())
        layers = [(s.placement, s.tiles) for s in state.placed if s.tiles is not None]
        jpeg = mercator.mosaic_tile(layers, z, x, y)
        return Response(jpeg, media_type="image/jpeg", headers=_IMMUTABLE)

    @app.get("/api/colormap.png")
    def colormap() -> Response:
        return Response(colormap_png(), media_type="image/png", headers=_IMMUTABLE)

    @app.get("/api/scenes/{sid}")
    def scene(sid: str) -> dict:
        return {**_scene(state.scene(sid), version), "maps": state.history(sid)}

    @app.get("/api/scenes/{sid}/tiles/{z}/{x}/{y}.jpg")
    def scene_tile(sid: str, z: int, x: int, y: int) -> Response:
        served = state.scene(sid)
        if served.tiles is None:
            raise UnknownIdError(f"scene {sid!r} has no pixels to show (its image is missing)")
        _tile_exists(served, z, x, y)
        return Response(served.tiles.tile(z, x, y), media_type="image/jpeg", headers=_IMMUTABLE)

    @app.post("/api/scenes/{sid}/maps")
    async def ask(sid: str, request: Request) -> dict:
        body = await _json_body(request)
        if not isinstance(body, dict) or "sentence" not in body:
            raise ParameterError('send {"sentence": "..."}')
        state.scene(sid)
        sentence = state.check_sentence(body["sentence"])
        spec = state.add_sentence(sid, sentence)
        cached = (sid, spec.id) in state.maps
        entry = await asyncio.wrap_future(state.map_future(sid, spec.id))
        return {
            **state.describe_map(sid, spec, entry),
            "cached": cached,
            "warning": state.warning(sentence),
        }

    @app.get("/api/scenes/{sid}/maps")
    def history(sid: str) -> list[dict]:
        return state.history(sid)

    @app.get("/api/scenes/{sid}/maps/{mid}")
    async def one_map(sid: str, mid: str) -> dict:
        spec = state.spec(sid, mid)
        entry = await asyncio.wrap_future(state.map_future(sid, mid))
        return state.describe_map(sid, spec, entry)

    @app.get("/api/scenes/{sid}/maps/{mid}/tiles/{z}/{x}/{y}.png")
    async def overlay_tile(sid: str, mid: str, z: int, x: int, y: int, style: str = "jet"):
        served = state.scene(sid)
        check_style(style)
        state.spec(sid, mid)
        _tile_exists(served, z, x, y)
        future = state.map_future(sid, mid)
        entry = future.result() if future.done() else await asyncio.wrap_future(future)
        png = map_tile(entry.finished, served.tile_grid, z, x, y, style)  # ~1 ms: no thread hop
        return Response(png, media_type="image/png", headers=_IMMUTABLE)

    @app.get("/api/scenes/{sid}/maps/{mid}/mercator/{z}/{x}/{y}.png")
    async def overlay_mercator_tile(
        sid: str, mid: str, z: int, x: int, y: int, style: str = "jet"
    ) -> Response:
        served = state.scene(sid)
        check_style(style)
        state.spec(sid, mid)
        if served.placement is None:
            raise UnknownIdError(f"scene {sid!r} has no place on the map (no CRS)")
        _mercator_tile_exists(z, x, y, served.placement.zoom)
        future = state.map_future(sid, mid)
        entry = future.result() if future.done() else await asyncio.wrap_future(future)
        png = await run_in_threadpool(
            mercator.map_tile, entry.finished, served.placement, z, x, y, style
        )
        return Response(png, media_type="image/png", headers=_IMMUTABLE)

    @app.get("/api/scenes/{sid}/maps/{mid}/regions.geojson")
    async def regions(sid: str, mid: str, download: bool = False, lonlat: bool = False) -> Response:
        spec = state.spec(sid, mid)
        await asyncio.wrap_future(state.map_future(sid, mid))
        data = await run_in_threadpool(partial(state.geojson, sid, mid, lonlat=lonlat))
        headers = _attachment(f"regions-{_stem(state, sid, spec)}.geojson") if download else {}
        return Response(data, media_type="application/geo+json", headers=headers)

    @app.get("/api/scenes/{sid}/maps/{mid}/selo_map.tif")
    async def geotiff(sid: str, mid: str) -> Response:
        spec = state.spec(sid, mid)
        await asyncio.wrap_future(state.map_future(sid, mid))
        data = await run_in_threadpool(state.geotiff, sid, mid)
        headers = _attachment(f"selo_map-{_stem(state, sid, spec)}.tif")
        return Response(data, media_type="image/tiff", headers=headers)

    return app


def _mercator(state: ServeState, version: str) -> dict | None:
    """The page's Web Mercator map: its tiles, deepest zoom and the scenes' bounds."""
    placed = state.placed
    if not placed:
        return None
    boxes = np.array([s.placement.lonlat for s in placed])
    return {
        "tiles": f"/api/mercator/{{z}}/{{x}}/{{y}}.jpg?v={version}",
        "zoom": state.mercator_zoom(),
        "lonlat": [*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()],
        "scenes": len(placed),
    }


def _mercator_tile_exists(z: int, x: int, y: int, zmax: int) -> None:
    try:
        mercator.check_tile(z, x, y, zmax)
    except ParameterError as e:
        raise UnknownIdError(str(e)) from None


def _scene(served, version: str) -> dict:
    return {
        **served.describe(),
        "tiles": f"/api/scenes/{served.id}/tiles/{{z}}/{{x}}/{{y}}.jpg?v={version}",
    }


class _HostCheck:
    """ASGI middleware: 400 for a Host header that names another host than ``allowed``."""

    def __init__(self, app, *, allowed: frozenset[str]) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or ())
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                names = ", ".join(sorted(self.allowed))
                message = f"this server answers to {names}, not {host!r}"
                response = JSONResponse({"error": message, "status": 400}, status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(header: str) -> str:
    """The host of a Host header without its port (``[::1]:8765`` -> ``[::1]``)."""
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.split(":", 1)[0]


def _tile_exists(served, z: int, x: int, y: int) -> None:
    try:
        served.tile_grid.check(z, x, y)
    except ParameterError as e:
        raise UnknownIdError(str(e)) from None


def _stem(state: ServeState, sid: str, spec) -> str:
    return state.describe_map(sid, spec)["file_stem"]


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


async def _json_body(request: Request) -> object:
    declared = request.headers.get("content-length")
    too_large = RequestTooLargeError(f"the request body is larger than {MAX_BODY} bytes")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise too_large
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY:
            raise too_large
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ParameterError('the body must be JSON: {"sentence": "..."}') from None


def _reply(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def _errors(app: FastAPI) -> None:
    """Every error as ``{"error": message, "status": code}``: selo's errors with their
    class's ``http_status``, the framework's with theirs."""

    @app.exception_handler(SeloError)
    async def selo_error(request: Request, e: SeloError) -> JSONResponse:
        return _reply(e.http_status, str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        message = e.detail if isinstance(e.detail, str) else "request failed"
        if e.status_code == 404:
            message = f"not found: {request.url.path}"
        return _reply(e.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        parts = []
        for err in e.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("path", "query"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return _reply(422, "malformed request: " + "; ".join(parts))


class _InternalErrors:
    """ASGI middleware: any other exception is logged here with an id and its traceback,
    and answered 500 "internal error" with that id (its text stays in the log: it may
    name paths, and the server may be reachable by others)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:  # noqa: BLE001 - the last line of defence
            ident = secrets.token_hex(6)
            log.exception(
                "selo serve: internal error %s answering %s %s",
                ident,
                scope.get("method", ""),
                scope.get("path", ""),
            )
            if not started:
                message = f"internal error (id {ident}; the server's log has the details)"
                await _reply(500, message)(scope, receive, send)
