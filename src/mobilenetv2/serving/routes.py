"""The routes: POST /v1/predict (batched across requests), /v1/model, /healthz, /readyz, /metrics and the page. Each
reads what it needs from ``request.app.state.serving`` (a ``ServingState``); failures raise, the app's one error
handler answers them."""

from __future__ import annotations

import hmac
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mobilenetv2.serving.errors import ApiError
from mobilenetv2.serving.state import ServingState
from mobilenetv2.serving.upload import prepare_upload, read_upload

if TYPE_CHECKING:
    from mobilenetv2.inference.predictor import Predictor

PREDICT_PATH = "/v1/predict"
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}

router = APIRouter()


def serving(request: Request) -> ServingState:
    return request.app.state.serving


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ready = serving(request).ready
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    return Response(generate_latest(serving(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/model")
async def model_card(request: Request) -> dict[str, Any]:
    return serving(request).card


@router.get("/", response_class=HTMLResponse)
async def page() -> str:
    return resources.files("mobilenetv2.serving").joinpath("static/index.html").read_text(encoding="utf-8")


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise ApiError(404, f"no static file {name!r}")
    body = resources.files("mobilenetv2.serving").joinpath(f"static/{name}").read_bytes()
    return Response(body, media_type=STATIC[name])


@router.post(PREDICT_PATH)
async def predict(request: Request, top_k: int = 5) -> JSONResponse:
    # an image (the raw body, or the multipart field "file") -> the task's answer (no docstring: /docs would show it)
    started, state = time.perf_counter(), serving(request)
    check_key(request, state.options.api_key)
    check_top_k(top_k, state.options.max_top_k)
    body = await read_upload(request)
    inputs, prepared = await state.decode(prepare_upload, state.predictor, body)
    outputs = await state.batcher.submit(inputs, state.options.timeout_s)
    result = await state.decode(finish, state.predictor, outputs, prepared, top_k)
    return answer(state.card, result, started)


def check_key(request: Request, key: str | None) -> None:
    if key is None:
        return
    given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise ApiError(401, "missing or wrong API key (send it as X-API-Key or Authorization: Bearer)")


def check_top_k(top_k: int, most: int) -> None:
    if not 1 <= top_k <= most:
        raise ApiError(422, f"top_k must be between 1 and {most}, got {top_k}")


def finish(predictor: Predictor, outputs: Any, prepared: Any, top_k: int) -> dict[str, Any]:
    """The presenter's answer (JSON-ready) from the request's rows of the batch's outputs; ``top_k`` applies to the tasks
    that list classes (a detector's boxes are capped by its own max_detections)."""
    options = {"top_k": top_k} if "top_k" in predictor.options else {}
    return predictor.presenter.answer(predictor.finish(outputs, prepared, **options))


def answer(card: dict[str, Any], result: dict[str, Any], started: float) -> JSONResponse:
    return JSONResponse({"task": card["task"], "backend": card["backend"], **result,
                         "latency_ms": round(1000 * (time.perf_counter() - started), 2)})
