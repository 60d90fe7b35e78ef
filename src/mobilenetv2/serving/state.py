"""What the routes read from ``request.app.state.serving``: the served model and its card, the options, the batcher,
the metrics, and the threads a request's work runs on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mobilenetv2.serving.batcher import Batcher
from mobilenetv2.serving.metrics import Metrics

CONFIG_VARIABLE = "MOBILENETV2_SERVE_CONFIG"  # where `mobilenetv2 serve` leaves the options for each worker process

if TYPE_CHECKING:
    from mobilenetv2.inference.predictor import Predictor


@dataclass
class ServeOptions:
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 256  # inputs waiting; more get 503 with Retry-After
    timeout_s: float = 30.0  # a request waiting longer gets 504
    max_top_k: int = 20
    # threads decoding and resizing uploads (Pillow and numpy release the GIL); more than half the cores starves the model
    decode_threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    api_key: str | None = None
    read_timeout_s: float = 10.0  # the longest pause in a request's body (408 after)
    body_timeout_s: float = 60.0  # the longest a whole body may take to arrive (408 after)
    max_uploads: int = 8  # bodies streaming in at once (each up to 20 MB in memory); more get 503
    header_timeout_s: float = 10.0  # a new connection's request headers must arrive within this (closed after)


@dataclass
class ServingState:
    """The app's state, built once by ``create_app``; ``app.state.serving``."""

    predictor: Predictor  # a Classifier, Segmenter or Detector
    card: dict[str, Any]  # what /v1/model shows
    options: ServeOptions
    batcher: Batcher  # the model's thread: forward passes of batched inputs
    metrics: Metrics
    decoders: ThreadPoolExecutor  # decoding, resizing and post-processing beside the event loop (Pillow and numpy)
    ready: bool = False  # once the warm-up pass has run

    @classmethod
    def build(cls, predictor: Predictor, card: dict[str, Any], options: ServeOptions) -> ServingState:
        batcher = Batcher(predictor.logits, options.max_batch, options.max_wait_ms, options.max_queue)
        decoders = ThreadPoolExecutor(max_workers=options.decode_threads, thread_name_prefix="mobilenetv2-decode")
        return cls(predictor, card, options, batcher, Metrics(batcher), decoders)

    async def decode(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a decoding thread: everything a request needs but the model (no torch: Pillow and numpy)."""
        return await asyncio.get_running_loop().run_in_executor(self.decoders, fn, *args)
