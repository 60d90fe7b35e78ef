"""console: -v/-q logging levels, and progress bars only when stderr is a terminal."""

from __future__ import annotations

import io
import logging

import pytest

from mobilenetv2.console import SilentProgress, progress, progress_enabled, setup_logging


@pytest.fixture(autouse=True)
def _restore_level():
    logger = logging.getLogger("mobilenetv2")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.mark.parametrize("verbosity, level", [(0, logging.INFO), (-1, logging.WARNING), (-2, logging.WARNING),
                                              (1, logging.DEBUG)])
def test_verbosity_sets_the_package_level(verbosity, level):
    setup_logging(verbosity)
    setup_logging(verbosity)  # idempotent: one handler
    logger = logging.getLogger("mobilenetv2")
    assert logger.level == level and len(logger.handlers) == 1


def test_messages_are_plain_lines_on_the_current_stderr(capsys):
    setup_logging(0)
    logging.getLogger("mobilenetv2.training.loop").info("epoch %d/%d", 1, 3)
    logging.getLogger("mobilenetv2.training.loop").debug("hidden")
    assert capsys.readouterr().err == "epoch 1/3\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
    setup_logging(0)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress_enabled()
    bar = progress(range(3), total=3, desc="epoch 1")
    assert isinstance(bar, SilentProgress) and list(bar) == [0, 1, 2]
    with progress(total=5) as bar:
        bar.update(2)
        bar.set_postfix(loss=0.5)
    assert bar.n == 2


def test_bar_on_a_terminal_unless_quiet(monkeypatch):
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    setup_logging(0)
    assert progress_enabled()
    with progress(total=4, desc="epoch 1") as bar:
        bar.update(4)
    assert not isinstance(bar, SilentProgress) and "epoch 1" in tty.getvalue()
    setup_logging(-1)
    assert not progress_enabled()
