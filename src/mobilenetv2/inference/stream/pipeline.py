"""The prediction pipeline: sources -> decoding, resizing and normalising in worker threads (``decode.model_inputs``:
Pillow and numpy, which release the GIL) -> batches on a model thread (``Predictor.logits``, any backend) -> ``finish``
(and tracks, in a video) -> the caller, in input order. No torch here unless torch is the backend.

Every stage holds a bounded number of frames, so memory does not grow with the number of inputs. Live sources keep at
most two frames in flight: the rest are dropped at the source and the latency stays bounded.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.data.images import BadImageError
from mobilenetv2.errors import UserError
from mobilenetv2.inference.batching import forward_parts
from mobilenetv2.inference.stream.decode import model_inputs
from mobilenetv2.inference.stream.frames import Failure, Frame, Result, SourceEnd
from mobilenetv2.inference.stream.sources import Context, Source, open_sources
from mobilenetv2.inference.stream.stats import SourceStats

if TYPE_CHECKING:
    from mobilenetv2.inference.predictor import Predictor

log = logging.getLogger(__name__)
LIVE_IN_FLIGHT = 2  # live frames being prepared or run at once: the next one is taken while the model runs
_END = object()


@dataclass
class StreamOptions:
    """How a run goes: images a forward pass (None: the predictor's), decoding threads, full-size pictures kept for
    drawing, every Nth video frame, at most so many frames a video or stream, and the task's prediction options."""

    batch_size: int | None = None
    workers: int | None = None
    pictures: bool = False
    vid_stride: int = 1
    max_frames: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        for name in ("batch_size", "workers", "max_frames"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.vid_stride < 1:
            raise UserError(f"--vid-stride must be >= 1, got {self.vid_stride}")


def default_workers() -> int:
    """Decoding threads: as many as the cores this process may use, at most 4 (Pillow and numpy release the GIL)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


class Pipeline:
    """Iterate over it for ``Result``s, ``Failure``s and ``SourceEnd``s in input order; ``close()`` stops it early."""

    def __init__(self, predictor: Predictor, sources: Sequence[Source], options: StreamOptions | None = None,
                 skip: Callable[[str], bool] | None = None) -> None:
        self.predictor, self.sources = predictor, list(sources)
        self.options = options or StreamOptions()
        self.options.check()
        predictor.resolve(self.options.overrides)
        self.batch_size = self.options.batch_size or predictor.batch_size
        self.skip = skip or (lambda key: False)
        self.pool = ThreadPoolExecutor(self.options.workers or default_workers(), thread_name_prefix="mobilenetv2-decode")
        self.pending: queue.Queue = queue.Queue(maxsize=2 * self.batch_size)
        self.out: queue.Queue = queue.Queue(maxsize=2)
        self.live_slots = threading.Semaphore(LIVE_IN_FLIGHT)
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.tracker: Any = None
        self.stats: dict[str, SourceStats] = {}
        self.begun: dict[int, float] = {}  # id(source) -> when its first frame was asked for (its frames/s start there)
        # the model thread: the caller's torch threads when torch runs the model (torch runs nowhere else here)
        self.torch_threads = torch_threads() if predictor.backend == "torch" else None

    # -- the caller's side ----------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Result | Failure | SourceEnd]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Result | Failure | SourceEnd]]:
        """The run batch by batch (what sinks write at once)."""
        self.start()
        try:
            while True:
                items = self.out.get()  # a stage always ends with _END or its error
                if items is _END:
                    return
                if isinstance(items, BaseException):
                    raise items
                yield items
        finally:
            self.close()

    def start(self) -> None:
        for target, name in ((self.produce, "mobilenetv2-source"), (self.run_model, "mobilenetv2-model")):
            thread = threading.Thread(target=self.guard, args=(target,), name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        """Stop the threads and the sources; frames in flight are dropped."""
        self.stopping.set()
        for source in self.sources:
            source.close()
        for q in (self.pending, self.out):  # unblock a thread waiting to put
            while not q.empty():
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
        for thread in self.threads:
            thread.join(timeout=10)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def guard(self, target: Callable[[], None]) -> None:
        """Run a stage; an error stops the run and is raised in the caller's thread."""
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self.stopping.set()
            self.put(self.out, exc)

    def put(self, q: queue.Queue, item: Any) -> bool:
        """``q.put`` that gives up when the run stops (False)."""
        while not self.stopping.is_set() or isinstance(item, BaseException):
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                if isinstance(item, BaseException) and self.stopping.is_set():
                    q.get_nowait()  # the caller wants the error more than a stale batch
        return False

    # -- the source thread: frames -> decoding jobs, in order -----------------------------------------------------------
    def produce(self) -> None:
        ordinal = 0
        for source in self.sources:
            if source.video and not source.live and self.skip(source.key()):
                continue
            context = Context(self.predictor.decode_size, self.options.pictures, self.options.vid_stride,
                              self.options.max_frames, ordinal)
            frames = source.frames(context)
            self.begun[id(source)] = time.perf_counter()
            while True:
                if source.live and not self.wait(self.live_slots):  # a slot first: the frame taken is the newest
                    return
                item = next(frames, _END)
                if item is _END or self.stopping.is_set():
                    break
                if isinstance(item, Frame):
                    ordinal = item.ordinal + 1
                    if not source.video and self.skip(item.key):
                        continue
                    item = self.pool.submit(self.prepare, item, source)
                elif source.live:
                    self.live_slots.release()
                if not self.put(self.pending, item):
                    return
            if self.stopping.is_set():
                return
        self.put(self.pending, _END)

    def wait(self, slots: threading.Semaphore) -> bool:
        while not slots.acquire(timeout=0.1):
            if self.stopping.is_set():
                return False
        return True

    def take(self, q: queue.Queue) -> Any:
        while not self.stopping.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                pass
        return _END

    def prepare(self, frame: Frame, source: Source) -> tuple[Frame, Source, Any, Any] | Failure:
        """In a decoding thread: decode a file (draft mode), resize and normalise to the model's inputs, keep a picture
        if asked."""
        if frame.read is not None:
            try:
                frame.image, full = frame.read()
            except BadImageError as exc:
                return Failure(frame.source, str(exc), key=frame.key)
            frame.original_size = full if full != frame.image.size else None
            if self.options.pictures:
                frame.picture = np.asarray(frame.image)
        inputs, state = model_inputs(self.predictor, frame.image, frame.original_size, **self.options.overrides)
        frame.image = None  # the model's input is all that travels on
        return frame, source, inputs, state

    # -- the model thread: batches -> predictions -----------------------------------------------------------------------
    def run_model(self) -> None:
        if self.torch_threads is not None:
            set_torch_threads(self.torch_threads)
        batch: list[Any] = []  # prepared frames, failures and ends, in input order
        inputs = 0
        while not self.stopping.is_set():
            item = self.take(self.pending)
            if item is _END:
                break
            entry = item.result() if isinstance(item, Future) else item
            batch.append(entry)
            inputs += len(entry[2]) if isinstance(entry, tuple) else 0
            live = isinstance(entry, tuple) and entry[1].live
            if inputs >= self.batch_size or isinstance(entry, SourceEnd) or (live and self.pending.empty()):
                if not self.put(self.out, self.predict(batch)):
                    return
                batch, inputs = [], 0
        if batch and not self.stopping.is_set():
            self.put(self.out, self.predict(batch))
        self.put(self.out, _END)

    def predict(self, batch: list[Any]) -> list[Result | Failure | SourceEnd]:
        prepared = [entry for entry in batch if isinstance(entry, tuple)]
        outputs = iter(forward_parts(self.predictor.logits, [inputs for _, _, inputs, _ in prepared],
                                     self.batch_size))
        results = []
        for entry in batch:
            if not isinstance(entry, tuple):
                results.append(self.end_of(entry) if isinstance(entry, SourceEnd) else entry)
                continue
            frame, source, _, state = entry
            prediction = self.predictor.finish(next(outputs), state, **self.options.overrides)
            prediction.source = frame.source
            results.append(self.result(frame, source, prediction))
        return results

    def result(self, frame: Frame, source: Source, prediction: Any) -> Result:
        result = Result(frame, prediction)
        if source.live:
            result.extra["latency_ms"] = round(1000 * (time.perf_counter() - frame.arrived), 2)
            self.live_slots.release()
        if source.video:
            if source.name not in self.stats:  # a stream's clock starts at its first frame's arrival (not its connection)
                self.stats[source.name] = SourceStats(None if source.live else self.begun.get(id(source)))
            self.stats[source.name].add(result)
            if self.tracker is None or self.tracker.source != source.name:
                self.tracker = self.predictor.tracker(source.name, source.fps)
            if self.tracker is not None:
                result.extra.update(self.tracker.update(prediction, frame.time))
        return result

    def end_of(self, end: SourceEnd) -> SourceEnd:
        """A source's end, with its figures (``summary``) when it was a video or a stream."""
        if self.tracker is not None and self.tracker.source == end.source:
            end.info["distinct_objects"] = self.tracker.distinct
            self.tracker = None
        if end.source in self.stats:
            end.summary = self.stats.pop(end.source).summary(end)
        return end


def predict_stream(predictor: Predictor, inputs: str | Sequence[str] | Sequence[Source], *, batch_size: int | None = None,
                   workers: int | None = None, pictures: bool = False, vid_stride: int = 1, max_frames: int | None = None,
                   skip: Callable[[str], bool] | None = None, **overrides: Any) -> Iterator[Result | Failure | SourceEnd]:
    """Predictions of files, folders, globs, list files, videos, cameras and streams, one ``Result`` at a time, in
    input order (with ``Failure``s for unreadable inputs and a ``SourceEnd`` after each source); memory stays bounded
    whatever the number of inputs. ``overrides`` are the task's options (``top_k``, ``score_threshold``, ...)."""
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    sources = [s for s in items if isinstance(s, Source)] + open_sources([s for s in items if not isinstance(s, Source)])
    options = StreamOptions(batch_size, workers, pictures, vid_stride, max_frames, overrides)
    return iter(Pipeline(predictor, sources, options, skip))


def set_torch_threads(count: int) -> None:
    """torch's intra-op threads in this thread (only called when torch runs the model)."""
    import torch

    torch.set_num_threads(count)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
