"""``--backend auto``: open a file on every backend that runs it, time each on a few warm-up batches and keep the
fastest, logging the choice and the times in one line.

The choice is cached per file (its content's SHA-256, companions included), CPU (model name and feature flags),
thread count and backend versions, in ``$XDG_CACHE_HOME/mobilenetv2/backend-choice.json`` (default
``~/.cache/mobilenetv2/``), so a second start (or a server's next worker) does not time again. Each backend runs
the file at the file's own precision (fp32, or int8 for an int8 file): bf16 changes the outputs, so auto never
picks it; ``--backend openvino:bf16`` asks for it, and the line says so where it is available.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobilenetv2.errors import UserError, first_line
from mobilenetv2.extras import MissingExtraError
from mobilenetv2.formats.lookup import get_format
from mobilenetv2.formats.registry import FormatEntry
from mobilenetv2.io import atomic_write_text
from mobilenetv2.timing import time_interleaved

if TYPE_CHECKING:
    from collections.abc import Callable

    from mobilenetv2.backends.base import Runtime, RuntimeOptions

    Opener = Callable[[Path, FormatEntry, str, RuntimeOptions], Runtime]  # (path, entry, backend, options) -> runtime

log = logging.getLogger("mobilenetv2.formats")

CACHE_FILE = "backend-choice.json"
MAX_ENTRIES = 256
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai-edge-litert",
            "executorch": "executorch", "torch": "torch"}  # backend -> the distribution whose version is in the key
WARMUP, ROUNDS = 2, 5


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/mobilenetv2/backend-choice.json``, default ``~/.cache/mobilenetv2/backend-choice.json``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "mobilenetv2" / CACHE_FILE


def file_digest(path: Path, entry: FormatEntry) -> str:
    """SHA-256 of the file and its companions (an IR's .bin): a copy of the same model hits the same entry."""
    digest = hashlib.sha256()
    for part in (path, *(path.with_suffix(s) for s in get_format(entry.name).companions)):
        with open(part, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(path: Path, entry: FormatEntry, options: RuntimeOptions) -> str:
    """What the choice depends on: the model, the CPU, the threads and the backends' versions."""
    from mobilenetv2.hardware import cpu_info

    cpu = cpu_info()
    versions = {}
    for backend in entry.backends:
        try:
            versions[backend] = importlib.metadata.version(PACKAGES.get(backend, backend))
        except importlib.metadata.PackageNotFoundError:
            versions[backend] = None
    parts = {"file": file_digest(path, entry), "cpu": cpu.model, "flags": sorted(cpu.flags),
             "threads": options.threads, "versions": versions}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def read_cache() -> dict[str, Any]:
    try:
        stored = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def write_cache(key: str, record: dict[str, Any]) -> None:
    """Add ``record`` (the newest MAX_ENTRIES kept), atomically; a cache that cannot be written is only logged."""
    entries = read_cache()
    entries.pop(key, None)
    entries[key] = record
    try:
        atomic_write_text(cache_path(), json.dumps(dict(list(entries.items())[-MAX_ENTRIES:]), indent=1))
    except OSError as exc:
        log.debug("backend choice not cached: %s", first_line(exc))


def timing_batches(runtime: Runtime) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch of 1 and one of 8 (2 above 320 px) of normalised images at the model's input size."""
    size, channels = runtime.preprocessing.input_size, runtime.input_channels
    many = 8 if size <= 320 else 2
    images = np.random.default_rng(0).standard_normal((many, channels, size, size), dtype=np.float32)
    return images[:1], images


def time_runtimes(runtimes: dict[str, Runtime]) -> dict[str, tuple[float, float]]:
    """backend -> (batch-1 ms, ms per image at the larger batch), all candidates interleaved."""
    one, many = timing_batches(next(iter(runtimes.values())))
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    for batch in (one, many):
        stats = time_interleaved({name: (lambda r=r, b=batch: r(b)) for name, r in runtimes.items()},
                                 rounds=ROUNDS, warmup=WARMUP)
        for name, s in stats.items():
            times[name].append(s.median_ms / len(batch))
    return {name: (round(t[0], 3), round(t[1], 3)) for name, t in times.items()}


def score(times: tuple[float, float]) -> float:
    """Latency and throughput weigh the same: batch-1 ms + ms per image at the larger batch."""
    return times[0] + times[1]


def open_candidates(path: Path, entry: FormatEntry, candidates: list[str], options: RuntimeOptions,
                    open_file: Opener) -> tuple[dict[str, Runtime], list[str]]:
    """Every candidate backend that opens the file, and a note for each that does not (not installed, refused)."""
    runtimes, skipped = {}, []
    for backend in candidates:
        try:
            runtimes[backend] = open_file(path, entry, backend, options)
        except MissingExtraError as exc:
            skipped.append(f"{backend} ({first_line(exc).split(';')[0]})")
        except UserError as exc:
            skipped.append(f"{backend} ({first_line(exc, 120)})")
    if not runtimes:
        raise UserError(f"{path}: no backend could open it: {'; '.join(skipped)}")
    return runtimes, skipped


def describe_times(times: dict[str, list[float]], batch: int) -> str:
    return ", ".join(f"{name} {t[0]:.2f} ms at batch 1, {t[1]:.2f} ms/image at batch {batch}" for name, t in times.items())


def bf16_hint(runtime: Runtime, backends: list[str]) -> str:
    """Where bf16 could be asked for (an fp32 file, one of ``backends`` computes in bf16, a CPU with bf16): how."""
    from mobilenetv2.backends import get_backend
    from mobilenetv2.hardware import cpu_info

    if runtime.precision != "fp32" or cpu_info().bf16_path is None:
        return ""
    able = [b for b in backends if "bf16" in get_backend(b).runtime_class().precisions]
    return f"; bf16 never picked by auto (it changes the outputs): --backend {able[0]}:bf16 asks for it" if able else ""


def open_fastest(path: Path, entry: FormatEntry, options: RuntimeOptions, open_file: Opener) -> Runtime:
    """``path`` on the fastest of its format's backends here (timed now, or the cached choice), each opened with
    ``open_file``; one log line. Backends that are no candidates for speed (TFLM's reference kernels) are not timed."""
    from mobilenetv2.backends import BACKENDS

    candidates = [b for b in entry.backends if BACKENDS[b].auto]
    if len(candidates) == 1:
        runtime = open_file(path, entry, candidates[0], options)
        runtime.selection = {"by": "auto", "cached": False, "only": True}
        # nothing was chosen, so nothing is said (the model card and runtime.backend still name it)
        log.debug("backend auto for %s: %s, %s (the only candidate for a %s)", path.name, runtime.backend,
                  runtime.precision, entry.title)
        return runtime
    key = cache_key(path, entry, options)
    cached = read_cache().get(key)
    if isinstance(cached, dict) and cached.get("backend") in candidates:
        runtime = open_file(path, entry, cached["backend"], options)
        runtime.selection = {"by": "auto", "cached": True, **{k: cached.get(k) for k in ("times", "batch", "timed")}}
        log.info("backend auto for %s: %s, %s (cached choice, timed %s: %s; %s threads; %s)%s", path.name,
                 runtime.backend, runtime.precision, cached.get("timed", "?"),
                 describe_times(cached.get("times", {}), cached.get("batch", 8)), options.threads or "default",
                 cache_path(), bf16_hint(runtime, list(entry.backends)))
        return runtime
    runtimes, skipped = open_candidates(path, entry, candidates, options, open_file)
    times = time_runtimes(runtimes) if len(runtimes) > 1 else {name: (float("nan"),) * 2 for name in runtimes}
    best = min(runtimes, key=lambda name: score(times[name]) if len(runtimes) > 1 else 0.0)
    for name, runtime in runtimes.items():
        if name != best:
            runtime.close()
    batch = len(timing_batches(runtimes[best])[1])
    if len(runtimes) > 1:
        write_cache(key, {"backend": best, "file": str(path), "times": times, "batch": batch,
                          "timed": time.strftime("%Y-%m-%d %H:%M"), "threads": options.threads})
    runtimes[best].selection = {"by": "auto", "cached": False, "times": times, "batch": batch, "skipped": skipped}
    ordered = dict(sorted(times.items(), key=lambda item: score(item[1])))
    log.info("backend auto for %s: %s, %s (timed now: %s; %s threads%s; cached in %s)%s", path.name, best,
             runtimes[best].precision, describe_times(ordered, batch) if len(runtimes) > 1 else "nothing to compare",
             options.threads or "default", f"; skipped {', '.join(skipped)}" if skipped else "", cache_path(),
             bf16_hint(runtimes[best], list(runtimes)))
    return runtimes[best]
