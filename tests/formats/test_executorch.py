import contextlib
import io
import json

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main

pytestmark = pytest.mark.slow  # every test here takes more than ~10 s

pytest.importorskip("executorch", reason="--format pte needs ExecuTorch (pip install executorch, in the [interop] extra)")


@pytest.fixture(scope="module")
def exported_pte(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported once through the CLI (lowering takes ~10 s): (path, what it printed)."""
    out = tmp_path_factory.mktemp("pte") / "tiny.pte"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", str(tiny_checkpoint), "--format", "pte", "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_export_pte_runs_in_executorch_like_pytorch(exported_pte, tiny_checkpoint):
    from mobilenetv2.formats import open_runtime
    from mobilenetv2.weights import load_model

    path, printed = exported_pte
    assert "verify: PASS on 4 synthetic images" in printed and f"wrote {path}" in printed and "tiny.pte.json" in printed

    model = load_model(tiny_checkpoint)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = model(images).numpy()
    runtime = open_runtime(path)
    assert (runtime.backend, runtime.format, runtime.precision, runtime.max_batch) == ("executorch", "pte", "fp32", 1)
    logits = runtime(images)  # three images through a batch-1 program
    assert np.abs(reference).max() > 1e-3  # non-trivial logits, so the comparison below means something
    np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=0)
    assert (logits.argmax(1) == reference.argmax(1)).all()


def test_export_pte_writes_metadata_beside_it(exported_pte):
    meta = json.loads(exported_pte[0].with_name("tiny.pte.json").read_text())
    assert meta["mobilenetv2.class_names"] == ["ants", "bees"]
    assert meta["mobilenetv2.preprocessing"]["input_size"] == 64
    assert meta["mobilenetv2.architecture"]["name"] == "mobilenet_v2"
    assert meta["mobilenetv2.task"] == "classification" and meta["mobilenetv2.precision"] == "fp32"


def _reference(checkpoint, batch):
    from mobilenetv2.weights import load_model

    with torch.inference_mode():
        return load_model(checkpoint)(batch).numpy()


@pytest.mark.parametrize("problem", ["lowering fails", "unloadable program", "wrong logits"])
def test_failed_pte_export_leaves_nothing(problem, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import executorch.exir

    from mobilenetv2.backends.executorch import ExecuTorchRuntime
    from mobilenetv2.formats.pte import PteFormat

    if problem == "lowering fails":
        def broken_lowering(*args, **kwargs):
            raise RuntimeError("XNNPACK cannot lower this graph")
        monkeypatch.setattr(executorch.exir, "to_edge_transform_and_lower", broken_lowering)
        expected = "this model cannot be exported to ExecuTorch: XNNPACK cannot lower this graph"
    elif problem == "unloadable program":
        monkeypatch.setattr(PteFormat, "export", lambda self, model, path, meta, **kw: path.write_bytes(b"not a program"))
        expected = "Failed to load program"
    else:
        monkeypatch.setattr(ExecuTorchRuntime, "run", lambda self, x: _reference(tiny_checkpoint, torch.from_numpy(x)) + 1.0)
        expected = "the exported model does not match PyTorch, nothing written: verify: FAIL"
    out = tmp_path / "bad.pte"
    capsys.readouterr()  # drop what importing ExecuTorch above may have logged
    assert main(["export", str(tiny_checkpoint), "--format", "pte", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenetv2 export: error:") and expected in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_classifier_predict_and_evaluate_take_a_pte(exported_pte, tiny_checkpoint, shared_data, capsys):
    from mobilenetv2.inference import Classifier

    photos = sorted((shared_data / "hymenoptera_data" / "val" / "bees").glob("*.jpg"))[:3]
    expected = Classifier.load(tiny_checkpoint, device="cpu").predict(photos, top_k=2)
    program = Classifier.load(exported_pte[0])
    assert program.class_names == ["ants", "bees"] and program.preprocessing.input_size == 64
    for mine, theirs in zip(program.predict(photos, top_k=2), expected):
        assert mine.labels == theirs.labels
        np.testing.assert_allclose(mine.probabilities, theirs.probabilities, atol=1e-5)

    capsys.readouterr()
    assert main(["predict", str(exported_pte[0]), str(photos[0]), "--format", "jsonl"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["labels"] == expected[0].labels

    from mobilenetv2.evaluation.evaluator import evaluate

    val = str(shared_data / "hymenoptera_data")
    assert evaluate(exported_pte[0], val).confusion.tolist() == evaluate(tiny_checkpoint, val).confusion.tolist()


def test_missing_pte_is_one_line(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "image.png")
    assert main(["predict", str(tmp_path / "nothing.pte"), str(tmp_path / "image.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ExecuTorch program not found" in err
