"""What the routes read from ``request.app.state.serving``: the served model and its card, the options, the batcher,
the metrics, and the threads a request's work runs on."""

from __future__ import annotations

import asyncio
import os
import sys
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
    # threads decoding and resizing uploads (PIL and torch release the GIL); more than half the cores starves the model
    decode_threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    api_key: str | None = None
    read_timeout_s: float = 10.0  # the longest pause in a request's body (408 after)
    body_timeout_s: float = 60.0  # the longest a whole body may take to arrive (408 after)
    max_uploads: int = 8  # bodies streaming in at once (each up to 20 MB in memory); more get 503
    header_timeout_s: float = 10.0  # a new connection's request headers must arrive within this (closed after)


def torch_work_on_model_thread() -> bool:
    """Whether the requests' torch work (resizing, postprocessing) runs on the model's thread, else on the decoding
    threads. Torch ops from two Python threads at once make two OpenMP teams that fight for the cores: when torch itself
    has several threads (the torch backend), its work takes turns with the forward passes on the model's thread; with
    one thread (beside onnxruntime) it runs beside the decoding."""
    torch = sys.modules.get("torch")  # never loaded when an exported file runs on another engine
    return torch is not None and torch.get_num_threads() > 1


@dataclass
class ServingState:
    """The app's state, built once by ``create_app``; ``app.state.serving``."""

    predictor: Predictor  # a Classifier, Segmenter or Detector
    card: dict[str, Any]  # what /v1/model shows
    options: ServeOptions
    batcher: Batcher  # the model's thread: forward passes of batched inputs
    metrics: Metrics
    decoders: ThreadPoolExecutor  # decoding uploads beside the event loop
    torch_on_model_thread: bool = field(default_factory=torch_work_on_model_thread)
    ready: bool = False  # once the warm-up pass has run

    @classmethod
    def build(cls, predictor: Predictor, card: dict[str, Any], options: ServeOptions) -> ServingState:
        batcher = Batcher(predictor.logits_of_pixels, options.max_batch, options.max_wait_ms, options.max_queue)
        decoders = ThreadPoolExecutor(max_workers=options.decode_threads, thread_name_prefix="mobilenetv2-decode")
        return cls(predictor, card, options, batcher, Metrics(batcher), decoders)

    async def decode(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a decoding thread."""
        return await asyncio.get_running_loop().run_in_executor(self.decoders, fn, *args)

    async def torch_work(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, torch work, on the thread ``torch_work_on_model_thread`` chose."""
        return await (self.batcher.call(fn, *args) if self.torch_on_model_thread else self.decode(fn, *args))
