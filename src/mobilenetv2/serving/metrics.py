"""Prometheus metrics in the app's own registry, and the middleware that counts each prediction request once."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mobilenetv2.serving.batcher import Batcher
from mobilenetv2.serving.errors import FAILURE_KIND


class Metrics:
    """Requests by status, errors by kind and latency (counted by ``CountRequests``); the batcher's batch sizes and
    queue depth."""

    def __init__(self, batcher: Batcher) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mobilenetv2_requests", "prediction requests by HTTP status", ["status"],
                                registry=self.registry)
        self.errors = Counter("mobilenetv2_errors", "failed prediction requests by kind", ["kind"], registry=self.registry)
        self.latency = Histogram("mobilenetv2_request_latency_seconds", "prediction latency, request to answer",
                                 buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10), registry=self.registry)
        self.batch_size = Histogram("mobilenetv2_batch_size", "inputs per forward pass",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.queue = Gauge("mobilenetv2_queue_depth", "inputs waiting for a forward pass", registry=self.registry)
        self.queue.set_function(lambda: batcher.waiting)
        batcher.on_batch = lambda size, seconds: self.batch_size.observe(size)

    def count(self, status: int | None, kind: str | None, seconds: float) -> None:
        """One request: its answer's status (None: it raised and got no answer of ours), failure kind and latency."""
        self.latency.observe(seconds)
        if status is None:
            return
        self.requests.labels(str(status)).inc()
        if status >= 400:
            self.errors.labels(kind or str(status)).inc()


class CountRequests:
    """ASGI middleware: each ``POST path`` request counted once, when its answer has gone out."""

    def __init__(self, app: ASGIApp, metrics: Metrics, path: str) -> None:
        self.app, self.metrics, self.path = app, metrics, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), None

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.metrics.count(status, scope.get(FAILURE_KIND), time.perf_counter() - started)
