"""Interleaved, repeated timing: every candidate runs once per round, so machine noise hits all alike."""

from __future__ import annotations

import contextlib
import functools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class TimingStats:
    """Per-call times in milliseconds over all rounds."""

    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    rounds: int
    iters_per_round: int

    @property
    def spread(self) -> float:
        """(p90 - min) / median: how noisy the measurement was."""
        return (self.p90_ms - self.min_ms) / self.median_ms if self.median_ms else 0.0

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "spread": round(self.spread, 4)}


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def time_interleaved(
    candidates: dict[str, Callable[[], object]], rounds: int = 20, warmup: int = 3, iters_per_round: int = 1,
) -> dict[str, TimingStats]:
    """Time each zero-argument callable: ``warmup`` untimed calls each, then ``rounds`` rounds in which each
    candidate runs ``iters_per_round`` times back to back (order rotated every round)."""
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn = candidates[name]
            start = time.perf_counter()
            for _ in range(iters_per_round):
                fn()
            samples[name].append((time.perf_counter() - start) * 1e3 / iters_per_round)
    return {
        n: TimingStats(statistics.median(v), percentile(v, 90), min(v), max(v), rounds, iters_per_round)
        for n, v in samples.items()
    }


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (None: unchanged), then restore the previous count (None with
    torch not loaded: nothing to restore, and torch stays unloaded)."""
    if threads is None and "torch" not in sys.modules:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def restores_threads(fn: F) -> F:
    """Decorator: whatever thread count ``fn`` sets, the caller's is restored afterwards."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch_threads(None):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
