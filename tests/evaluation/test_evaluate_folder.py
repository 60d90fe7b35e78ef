"""``evaluate_folder``: a classifier on an image folder without torch gives the report that ``evaluate`` gives."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.evaluation.evaluator import evaluate, evaluate_folder
from mobilenetv2.extras import MissingExtraError
from mobilenetv2.inference import load_predictor


def write_folder(root, seed: int = 0):
    rng = np.random.default_rng(seed)
    for split, count in (("train", 2), ("val", 5)):
        for name in ("ants", "bees"):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                size = tuple(int(v) for v in rng.integers(40, 120, 2))
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / split / name / f"{i}.jpg")
    return root


def test_the_folder_report_is_evaluates(tiny_onnx, tmp_path):
    pytest.importorskip("onnxruntime")
    data = str(write_folder(tmp_path / "data"))
    predictor = load_predictor(tiny_onnx)
    ours = evaluate_folder(predictor, data, batch_size=4)
    theirs = evaluate(predictor, data, split="val", batch_size=4, workers=0)
    assert ours.info["split"] == "val" and ours.num_samples == theirs.num_samples == 10
    assert ours.top1 == theirs.top1 and np.array_equal(ours.confusion, theirs.confusion)
    assert ours.loss == pytest.approx(theirs.loss, rel=1e-5)
    assert [c.f1 for c in ours.per_class] == pytest.approx([c.f1 for c in theirs.per_class])
    assert evaluate_folder(predictor, data, "all").num_samples == 14


def test_other_data_names_the_torch_extra(tiny_onnx):
    pytest.importorskip("onnxruntime")
    with pytest.raises(MissingExtraError, match=r"pip install 'mobilenetv2\[torch\]'"):
        evaluate_folder(load_predictor(tiny_onnx), "digits")
