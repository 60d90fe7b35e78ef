"""Terminal output: the CLI's logging set-up (``-v``/``-q``) and progress bars that appear only on a terminal.

Library code logs through ``logging.getLogger(__name__)`` and wraps loops in :func:`progress`; under CI, ``| tee``
or ``nohup`` (stderr not a terminal) the bars are silent and only the logged lines (one per epoch) are written.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

LOGGER = "mobilenetv2"
_handler: logging.Handler | None = None


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (so redirections made after set-up apply), above any progress bar."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: ANN201 - logging's own attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001 - StreamHandler.__init__ assigns it
        pass

    def emit(self, record: logging.LogRecord) -> None:
        tqdm = sys.modules.get("tqdm")
        if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):  # a bar is drawn: print the line above it
            try:
                tqdm.tqdm.write(self.format(record), file=sys.stderr)
            except Exception:  # noqa: BLE001 - logging must never raise
                self.handleError(record)
            return
        super().emit(record)


def setup_logging(verbosity: int = 0) -> None:
    """Log the package's messages to stderr, one plain line each: INFO by default, WARNING if < 0, DEBUG if > 0.

    Idempotent (the CLI calls it once per command). Other libraries keep Python's default: warnings and errors only.
    """
    global _handler
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    logger = logging.getLogger(LOGGER)
    if _handler is None:
        _handler = _StderrHandler()
        _handler.setFormatter(logging.Formatter("%(message)s"))
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
    logger.setLevel(level)
    quiet_third_party_warnings(verbosity <= 0)


# Warnings of other libraries that say nothing a user can act on (JAX's os.fork, deprecations inside TensorFlow, ...):
# hidden by default, shown with -v. (message, category, module) as warnings.filterwarnings takes them.
THIRD_PARTY_NOISE = [
    (r"os\.fork\(\) was called", RuntimeWarning, ""),
    ("", Warning, r"(jax|jaxlib|tensorflow|tf_keras|keras|absl|coremltools|ai_edge_litert|ai_edge_torch|litert_torch)\b"),
    ("", DeprecationWarning, r"(?!mobilenetv2)"),
    ("", FutureWarning, r"(?!mobilenetv2)"),
]


def quiet_third_party_warnings(quiet: bool) -> None:
    """Hide ``THIRD_PARTY_NOISE`` (``quiet``) or show it again (-v)."""
    for message, category, module in THIRD_PARTY_NOISE:
        warnings.filterwarnings("ignore", message, category, module)
        if not quiet:
            warnings.filters.remove(warnings.filters[0])  # the entry just put first: the one to take out


def progress_enabled() -> bool:
    """Whether progress bars are drawn: stderr is a terminal and the package logs at INFO or below (not ``-q``)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) and logging.getLogger(LOGGER).getEffectiveLevel() <= logging.INFO


class SilentProgress:
    """The no-op stand-in for a tqdm bar: same methods, draws nothing."""

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None, **_: Any) -> None:
        self.iterable = iterable
        self.total = total
        self.n = 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable if self.iterable is not None else ():
            yield item
            self.n += 1

    def __enter__(self) -> SilentProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str | None = None,
             unit: str = "it", leave: bool = False, enabled: bool | None = None, **kwargs: Any) -> Any:
    """A tqdm bar on stderr when :func:`progress_enabled` (or ``enabled=True``), else a :class:`SilentProgress`.

    Use it like tqdm: ``for x in progress(loader, desc="epoch 1")`` or ``with progress(total=n) as bar: bar.update()``.
    """
    if enabled is None:
        enabled = progress_enabled()
    if not enabled:
        return SilentProgress(iterable, total=total)
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr, dynamic_ncols=True, **kwargs)
