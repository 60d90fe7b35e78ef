"""The HTTP app (FastAPI): its state (``state.py``), its life cycle (start the batcher, warm up, then ready), the
routes (``routes.py``), one error handler (``errors.py``), the count of each prediction (``metrics.py``) and the
limits that shed slow clients (``limits.py``)."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI

from mobilenetv2.serving.batcher import Batcher
from mobilenetv2.serving.errors import install_error_handler
from mobilenetv2.serving.limits import ShedSlowUploads
from mobilenetv2.serving.metrics import CountRequests
from mobilenetv2.serving.routes import PREDICT_PATH, router
from mobilenetv2.serving.state import ServeOptions, ServingState

if TYPE_CHECKING:
    from mobilenetv2.inference.predictor import Predictor

__all__ = ["ServeOptions", "create_app"]


def create_app(predictor: Predictor, card: dict[str, Any], options: ServeOptions | None = None) -> FastAPI:
    """The app serving ``predictor`` (a Classifier, Segmenter or Detector); ``card`` is what /v1/model shows."""
    app = FastAPI(title="mobilenetv2", version="1", lifespan=lifespan,
                  description=f"{card.get('task', '')} model {card.get('model', '')}: POST an image to {PREDICT_PATH}")
    app.state.serving = ServingState.build(predictor, card, options or ServeOptions())
    app.include_router(router)
    install_error_handler(app)
    app.add_middleware(CountRequests, metrics=app.state.serving.metrics, path=PREDICT_PATH)
    served = app.state.serving.options
    app.add_middleware(ShedSlowUploads, read_timeout_s=served.read_timeout_s, body_timeout_s=served.body_timeout_s,
                       max_uploads=served.max_uploads)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI):
    state: ServingState = app.state.serving
    state.batcher.start()
    await warm_up(state.predictor, state.batcher)
    # the libraries' hundreds of thousands of long-lived objects leave the garbage collector's view: a full
    # collection over them stalled every request in flight for ~170 ms (the p99 at concurrency 32)
    gc.collect()
    gc.freeze()
    state.ready = True
    yield
    await state.batcher.stop()
    state.decoders.shutdown(wait=False, cancel_futures=True)


async def warm_up(predictor: Predictor, batcher: Batcher) -> None:
    """One forward pass before /readyz says ready (the first pass allocates and picks kernels): a black image of the
    model's input size and channels, normalised."""
    size = predictor.preprocessing.input_size
    await batcher.submit(predictor.normalize(np.zeros((1, predictor.input_channels, size, size), np.uint8)), timeout=600)
