"""Optional dependencies: one line naming the extra, and runs that skip plots and TensorBoard without their extras."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from mobilenetv2 import extras
from mobilenetv2.extras import MissingExtraError, available, optional, require


@pytest.fixture
def without(monkeypatch):
    """``without("matplotlib")``: imports of the package fail as if it were not installed."""
    monkeypatch.setattr(extras, "_noted", set())

    def block(*modules: str) -> None:
        for module in modules:
            for name in [n for n in sys.modules if n == module or n.startswith(module + ".")]:
                monkeypatch.delitem(sys.modules, name)
            monkeypatch.setitem(sys.modules, module, None)
    return block


def test_require_names_the_extra_in_one_line(without):
    without("onnxruntime")
    with pytest.raises(MissingExtraError) as info:
        require("onnxruntime.quantization", "deploy")
    message = str(info.value)
    assert message.startswith("onnxruntime is not installed") and "pip install 'mobilenetv2[deploy]'" in message
    assert "\n" not in message and not available("onnxruntime")


def test_require_shows_a_broken_package_as_it_is():
    with pytest.raises(ModuleNotFoundError, match="no_such_submodule"):
        require("json.no_such_submodule", "deploy")


def test_optional_logs_once(without, caplog):
    without("matplotlib")
    with caplog.at_level(logging.INFO, logger="mobilenetv2"):
        assert not optional("matplotlib", "plots", "the plots")
        assert not optional("matplotlib", "plots", "the plots")
    assert caplog.messages == ["the plots skipped: matplotlib is not installed (pip install 'mobilenetv2[plots]')"]
    assert optional("json", "plots", "nothing")


def test_training_logs_without_matplotlib_and_tensorboard(without, tmp_path, caplog):
    from mobilenetv2.training.logs import TensorBoard, plot_curves

    without("matplotlib", "tensorboard")
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_acc": 0.5}]
    with caplog.at_level(logging.INFO, logger="mobilenetv2"):
        assert plot_curves(tmp_path / "curves.png", history) is False
        tb = TensorBoard(tmp_path / "tb")
        tb.log(1, history[0])
        tb.close()
    assert not (tmp_path / "curves.png").exists() and not (tmp_path / "tb").exists()
    assert any("mobilenetv2[tensorboard]" in m for m in caplog.messages)
    assert any("curves.png" in m and "mobilenetv2[plots]" in m for m in caplog.messages)


def test_evaluation_report_without_matplotlib(without, tmp_path):
    from mobilenetv2.tasks.classification.report import evaluate_predictions

    without("matplotlib")
    rng = np.random.default_rng(0)
    report = evaluate_predictions(rng.integers(0, 3, 20), rng.random((20, 3)), ["a", "b", "c"])
    report.write(tmp_path / "eval")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["confusion_matrix.csv", "report.json", "report.md"]
