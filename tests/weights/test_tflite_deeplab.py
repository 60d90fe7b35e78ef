"""The published DeepLabv3-MobileNetV2 PASCAL TFLite files: converted checkpoints agree with the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.weights import load_checkpoint

pytest.importorskip("ai_edge_litert", reason="reading .tflite needs ai-edge-litert (the [interop] extra)")
from mobilenetv2.weights.tflite_deeplab import convert_deeplab_tflite  # noqa: E402

FULL, HALF = "deeplabv3_mnv2_pascal_quant.tflite", "deeplabv3_mnv2_dm05_pascal_quant.tflite"
BIRD = 3


@pytest.fixture(scope="module")
def seg(shared_data):
    return shared_data / "segmentation"


@pytest.fixture(scope="module")
def photos(shared_data):
    """The bird and three more real photos, as the 513x513 uint8 arrays both runtimes get."""
    paths = [shared_data / "segmentation" / "bird_segmentation.bmp",
             *(shared_data / "tflite" / n for n in ("grace_hopper.bmp", "cat.bmp", "parrot.jpg"))]
    return {p.name: np.asarray(Image.open(p).convert("RGB").resize((513, 513), Image.BILINEAR)) for p in paths}


def interpreter_masks(path, photos) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    masks = {}
    for name, pixels in photos.items():
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
        interpreter.invoke()
        masks[name] = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0].copy()
    return masks


@torch.no_grad()
def our_masks(model, photos) -> dict[str, np.ndarray]:
    batch = torch.stack([torch.from_numpy(p.copy()).permute(2, 0, 1).float() / 128 - 1 for p in photos.values()])
    return dict(zip(photos, model.eval()(batch).argmax(1).numpy()))


def bird_iou(mask: np.ndarray, truth: np.ndarray) -> float:
    labelled = truth != 255
    ours, true = (mask == BIRD) & labelled, (truth == BIRD) & labelled
    return float((ours & true).sum() / (ours | true).sum())


@pytest.mark.slow
@pytest.mark.parametrize("name, min_agreement, min_iou", [(FULL, 0.99, 0.89), (HALF, 0.985, 0.80)])
def test_converted_model_agrees_with_the_interpreter(seg, photos, name, min_agreement, min_iou):
    ckpt = convert_deeplab_tflite(seg / name, seg / "pascal_voc_segmentation_labels.txt")
    assert ckpt.task == "segmentation" and ckpt.class_names[BIRD] == "bird" and len(ckpt.class_names) == 21
    ours, theirs = our_masks(ckpt.model, photos), interpreter_masks(seg / name, photos)
    agreement = {n: float((ours[n] == theirs[n]).mean()) for n in photos}
    assert np.mean(list(agreement.values())) >= 0.99, agreement
    assert min(agreement.values()) >= min_agreement, agreement
    truth = np.asarray(Image.open(seg / "bird_segmentation_mask.bmp"))
    assert bird_iou(ours["bird_segmentation.bmp"], truth) >= min_iou
    assert abs(bird_iou(ours["bird_segmentation.bmp"], truth) - bird_iou(theirs["bird_segmentation.bmp"], truth)) < 0.05


def test_convert_command_writes_a_segmentation_checkpoint(seg, tmp_path, capsys):
    out = tmp_path / "half.safetensors"
    assert main(["convert", str(seg / HALF), str(out), "--labels", str(seg / "pascal_voc_segmentation_labels.txt")]) == 0
    assert "segmentation model deeplabv3_mobilenet_v2 width 0.5" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt.task == "segmentation" and ckpt.model.arch["args"]["round_nearest"] == 1
    assert ckpt.model.arch["args"]["output_stride"] == 16 and ckpt.model.arch["args"]["align_corners"] is True


def test_files_that_are_not_deeplab_are_one_line(seg, shared_data, tmp_path, capsys):
    with pytest.raises(UserError, match="not a DeepLabv3-MobileNetV2"):
        convert_deeplab_tflite(shared_data / "tflite" / "mobilenet_v2_1.0_224_quant.tflite")
    garbage = tmp_path / "broken.tflite"
    garbage.write_bytes((seg / FULL).read_bytes()[:5000])
    out = tmp_path / "out.safetensors"
    assert main(["convert", str(garbage), str(out)]) == 2
    err = capsys.readouterr().err
    assert "broken.tflite" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    assert main(["convert", str(seg / FULL), str(out), "--drop-background"]) == 2
    assert "background" in capsys.readouterr().err and not out.exists()
