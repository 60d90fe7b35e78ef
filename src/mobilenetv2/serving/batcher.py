"""Dynamic batching across requests: inputs wait up to ``max_wait_ms`` (or until ``max_batch`` inputs are there), run
in one forward pass off the event loop, and each request gets its own rows of the outputs back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from mobilenetv2.inference.batching import forward_parts

T = TypeVar("T")


class QueueFull(Exception):
    """More inputs are waiting than the queue holds: the caller should answer 503 with Retry-After."""


@dataclass
class Pending:
    inputs: np.ndarray  # [k, C, H, W]: one request's inputs (an image, or its tiles)
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class Batcher:
    """Groups the inputs of concurrent requests; ``run(batch) -> outputs`` is the model (called in one thread)."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch: int = 16, max_wait_ms: float = 5.0,
                 max_queue: int = 256, on_batch: Callable[[int, float], None] | None = None) -> None:
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.max_queue, self.on_batch = max_queue, on_batch
        self.queue: asyncio.Queue[Pending] | None = None
        self.waiting = 0  # inputs queued and not yet running
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mobilenetv2-model")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self.loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the model's thread, between forward passes."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def submit(self, inputs: np.ndarray, timeout: float) -> np.ndarray:
        """The outputs for ``inputs``; ``QueueFull`` when the queue is full, ``TimeoutError`` after ``timeout`` s."""
        if self.queue is None:
            raise RuntimeError("the batcher is not started")
        if self.waiting + len(inputs) > self.max_queue:
            raise QueueFull
        future = asyncio.get_running_loop().create_future()
        self.waiting += len(inputs)
        await self.queue.put(Pending(inputs, future))
        return await asyncio.wait_for(future, timeout)

    async def loop(self) -> None:
        while True:
            group = [await self.queue.get()]
            count, deadline = len(group[0].inputs), time.perf_counter() + self.max_wait
            while count < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                group.append(item)
                count += len(item.inputs)
            self.waiting -= count
            await self.run_group(group)

    def forward(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        # in the model thread: concatenating a batch is real work, the event loop must not wait for it
        return forward_parts(self.run, parts)

    async def run_group(self, group: list[Pending]) -> None:
        live = [p for p in group if not p.future.done()]  # requests that timed out are not computed
        if not live:
            return
        count = sum(len(p.inputs) for p in live)
        started = time.perf_counter()
        try:
            outputs = await self.call(self.forward, [p.inputs for p in live])
        except Exception as exc:  # the model failed: every request of the batch gets the error
            for p in live:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(count, time.perf_counter() - started)
        for p, rows in zip(live, outputs):
            if not p.future.done():
                p.future.set_result(rows)
