"""The HTTP API (FastAPI): /v1/predict batched across requests, /v1/model, /healthz, /readyz, /metrics, the page."""

from __future__ import annotations

import asyncio
import gc
import hmac
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mobilenetv2.data.images import load_image_bytes
from mobilenetv2.serving.batcher import Batcher
from mobilenetv2.serving.errors import ApiError, install_error_handler
from mobilenetv2.serving.metrics import CountRequests, Metrics

MAX_BODY_BYTES = 20 * 1024 * 1024  # an upload above 20 MB is refused (413) before it is read whole
FILE_FIELD = "file"
PREDICT_PATH = "/v1/predict"


@dataclass
class ServeOptions:
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 256  # inputs waiting; more get 503 with Retry-After
    timeout_s: float = 30.0  # a request waiting longer gets 504
    max_top_k: int = 20
    # threads decoding and resizing uploads (PIL and torch release the GIL); more than half the cores starves the model
    decode_threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    api_key: str | None = None


def create_app(predictor: Any, card: dict[str, Any], options: ServeOptions | None = None) -> FastAPI:
    """The app serving ``predictor`` (a Classifier, Segmenter or Detector); ``card`` is what /v1/model shows."""
    options = options or ServeOptions()
    batcher = Batcher(predictor.logits_of_pixels, options.max_batch, options.max_wait_ms, options.max_queue)
    metrics = Metrics(batcher)
    state = {"ready": False}
    decoders = ThreadPoolExecutor(max_workers=options.decode_threads, thread_name_prefix="mobilenetv2-decode")
    on_model_thread = torch_work_on_model_thread()

    async def decode(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(decoders, fn, *args)

    async def torch_work(fn: Callable[..., Any], *args: Any) -> Any:
        return await (batcher.call(fn, *args) if on_model_thread else decode(fn, *args))

    def finish(outputs: torch.Tensor, prepared: Any, top_k: int) -> dict[str, Any]:
        return predictor.task.answer(predictor.finish(outputs, prepared, top_k))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        await warm_up(predictor, batcher)
        # the libraries' hundreds of thousands of long-lived objects leave the garbage collector's view: a full
        # collection over them stalled every request in flight for ~170 ms (the p99 at concurrency 32)
        gc.collect()
        gc.freeze()
        state["ready"] = True
        yield
        await batcher.stop()
        decoders.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="mobilenetv2", version="1", lifespan=lifespan,
                  description=f"{card.get('task', '')} model {card.get('model', '')}: POST an image to /v1/predict")

    app.state.options = options
    install_error_handler(app)
    app.add_middleware(CountRequests, metrics=metrics, path=PREDICT_PATH)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = state["ready"]
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/model")
    async def model_card() -> dict[str, Any]:
        return card

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return resources.files("mobilenetv2.serving").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise ApiError(404, f"no static file {name!r}")
        body = resources.files("mobilenetv2.serving").joinpath(f"static/{name}").read_bytes()
        return Response(body, media_type=STATIC[name])

    @app.post(PREDICT_PATH)
    async def predict(request: Request, top_k: int = 5) -> JSONResponse:
        started = time.perf_counter()
        check_key(request, options.api_key)
        if not 1 <= top_k <= options.max_top_k:
            raise ApiError(422, f"top_k must be between 1 and {options.max_top_k}, got {top_k}")
        body = await read_upload(request)
        # decoding and resizing run beside the event loop, not on it
        if on_model_thread:
            inputs, prepared = await torch_work(predictor.prepare, await decode(load_image_bytes, body))
        else:  # one hop: decode and resize
            inputs, prepared = await decode(lambda: predictor.prepare(load_image_bytes(body)))
        outputs = await batcher.submit(inputs, options.timeout_s)
        answer = {"task": card["task"], "backend": card["backend"],
                  **await torch_work(finish, outputs, prepared, top_k),
                  "latency_ms": round(1000 * (time.perf_counter() - started), 2)}
        return JSONResponse(answer)

    return app


STATIC = {"app.js": "text/javascript", "style.css": "text/css"}


def torch_work_on_model_thread() -> bool:
    """Whether the requests' torch work (resizing, postprocessing) runs on the model's thread, else on the decoding
    threads. Torch ops from two Python threads at once make two OpenMP teams that fight for the cores: when torch itself
    has several threads (the torch backend), its work takes turns with the forward passes on the model's thread; with
    one thread (beside onnxruntime) it runs beside the decoding."""
    return torch.get_num_threads() > 1


def check_key(request: Request, key: str | None) -> None:
    if key is None:
        return
    given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise ApiError(401, "missing or wrong API key (send it as X-API-Key or Authorization: Bearer)")


async def read_upload(request: Request) -> bytes:
    """The image bytes: the multipart field ``file``, or the raw body; refused above ``MAX_BODY_BYTES``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is {int(declared):,} bytes, above the limit of {MAX_BODY_BYTES:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is above the limit of {MAX_BODY_BYTES:,} bytes")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await multipart_file(request, bytes(body))
    if not body:
        raise ApiError(400, "empty body: send the image as the body, or as the multipart field 'file'")
    return bytes(body)


async def multipart_file(request: Request, body: bytes) -> bytes:
    from starlette.datastructures import UploadFile
    from starlette.requests import Request as Replay

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Replay(request.scope, receive).form()
    upload = form.get(FILE_FIELD)
    if not isinstance(upload, UploadFile):
        fields = ", ".join(repr(k) for k in form) or "none"
        raise ApiError(422, f"multipart upload without a file field named {FILE_FIELD!r} (fields: {fields})")
    return await upload.read()


async def warm_up(predictor: Any, batcher: Batcher) -> None:
    """One forward pass before /readyz says ready (the first pass allocates and picks kernels): a black image of the
    model's input size and channels."""
    size = predictor.preprocessing.input_size
    await batcher.submit(torch.zeros(1, predictor.input_channels, size, size, dtype=torch.uint8), timeout=600)
