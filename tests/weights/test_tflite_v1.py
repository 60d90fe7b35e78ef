"""TFLite MobileNetV1 import: Google's published uint8 file (and a float copy of it) converted into our mobilenet_v1,
against the LiteRT interpreter on the shared photos; other networks are refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.models.mobilenet_v1 import MOBILENET_V1_TABLE
from mobilenetv2.weights import load_checkpoint
from mobilenetv2.weights.tflite import _v1_arch, convert_tflite

from .conftest import float_copy, interpreter_logits, our_logits  # noqa: TID252

pytest.importorskip("ai_edge_litert")
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

# The interpreter's top-1 for each photo (this small model takes Grace Hopper's uniform for an academic gown).
PHOTOS = {"grace_hopper.bmp": "academic gown, academic robe, judge's robe", "cat.bmp": "Egyptian cat",
          "parrot.jpg": "macaw"}
SIZE = 160



@pytest.fixture(scope="module")
def v1_file(tflite_dir: Path) -> Path:
    return tflite_dir / "mobilenet_v1_0.5_160_quant.tflite"


@pytest.fixture(scope="module")
def converted(v1_file: Path, tflite_dir: Path):
    return convert_tflite(v1_file, labels=tflite_dir / "imagenet_labels.txt")


def photo_uint8(path: Path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))








def test_the_file_becomes_our_mobilenet_v1_with_its_width_classes_and_input(converted):
    assert converted.model.arch["name"] == "mobilenet_v1"
    args = converted.model.arch["args"]
    assert (args["width_mult"], args["num_classes"], args["activation"], args["tf_padding"]) == (0.5, 1001, "relu6", True)
    assert converted.class_names[0] == "background" and len(converted.class_names) == 1001
    pre = converted.preprocessing
    assert (pre.input_size, pre.resize_mode, pre.mean, pre.std) == (SIZE, "squash", (128 / 255,) * 3, (128 / 255,) * 3)


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_top1_and_logits_match_the_interpreter(converted, v1_file, tflite_dir, photo):
    image = photo_uint8(tflite_dir / photo)
    ref, ours = interpreter_logits(v1_file, image), our_logits(converted.model, image)
    assert converted.class_names[int(ours.argmax())] == PHOTOS[photo] == converted.class_names[int(ref.argmax())]
    assert len(set(np.argsort(-ours)[:5]) & set(np.argsort(-ref, kind="stable")[:5])) >= 4
    # uint8 activations round at every layer: the float model is close, not equal (the float copy below is exact)
    assert np.corrcoef(ours, ref)[0, 1] > 0.998 and np.abs(ours - ref).max() < 0.05 * np.abs(ref).max()


def test_a_float_file_gives_the_interpreters_logits_to_float_error(converted, v1_file, tflite_dir, tmp_path):
    """Pins down layouts, SAME padding on the stride-2 convs, the pairs' order and the folded BN exactly."""
    data = float_copy(v1_file.read_bytes())
    image = photo_uint8(tflite_dir / "cat.bmp")
    ref = interpreter_logits(data, image.astype(np.float32) / 128 - 1)
    assert np.abs(our_logits(converted.model, image) - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    path = tmp_path / "float.tflite"
    path.write_bytes(data)
    float_model = convert_tflite(path)
    assert float_model.model.arch["name"] == "mobilenet_v1" and float_model.preprocessing.mean == (0.5, 0.5, 0.5)
    assert np.abs(our_logits(float_model.model, image) - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("width", [0.25, 0.5, 0.75, 1.0])
def test_every_published_width_is_recognised_from_its_channels(width):
    """TF-slim's channels, max(int(c * width), 8), for Google's four widths (any resolution: the model is the same)."""
    channels = [max(int(c * width), 8) for c in [32] + [c for c, _ in MOBILENET_V1_TABLE]]
    sd = {"features.0.0.weight": torch.zeros(channels[0], 3, 3, 3), "classifier.1.weight": torch.zeros(1001, channels[-1])}
    sd |= {f"features.{b}.1.0.weight": torch.zeros(c, 1, 1, 1) for b, c in enumerate(channels[1:], start=1)}
    args = _v1_arch(Path("m.tflite"), sd)["args"]
    assert (args["width_mult"], args["round_nearest"], args["num_classes"]) == (width, 8, 1001)


def test_convert_cli_writes_a_mobilenet_v1_checkpoint_that_predicts_like_the_interpreter(v1_file, tflite_dir, tmp_path,
                                                                                        capsys):
    out = tmp_path / "v1.safetensors"
    assert main(["convert", str(v1_file), str(out), "--labels", str(tflite_dir / "imagenet_labels.txt")]) == 0
    assert "model mobilenet_v1 width 0.5, 1001 classes (1001 labels), input 160x160" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    assert ckpt.model.arch["args"]["tf_padding"] and ckpt.model.arch["args"]["activation"] == "relu6"
    assert main(["predict", str(out), str(tflite_dir / "cat.bmp"), "--top-k", "1"]) == 0
    assert "Egyptian cat" in capsys.readouterr().out


def test_a_v1_block_with_a_different_stride_is_named(v1_file, tmp_path):
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(v1_file.read_bytes(), 0)
    options = model.subgraphs[0].operators[1].builtinOptions  # block 1's depthwise conv: stride 1 in MobileNetV1
    options.strideH = options.strideW = 2
    builder = flatbuffers.Builder(2 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "strided.tflite"
    path.write_bytes(bytes(builder.Output()))
    with pytest.raises(UserError, match=r"block 1's depthwise conv should have stride 1, found operator 1 DEPTHWISE_CONV_2D"):
        convert_tflite(path)


@pytest.mark.slow
def test_a_network_that_is_no_mobilenet_is_refused_in_one_line(tmp_path, capsys):
    """A plain CNN (3x3 conv + ReLU twice, pooling, fully connected) exported by litert-torch, as a user's own might be
    (stride 1, so that its padding is SAME and the file has only operators that MobileNets have too)."""
    pytest.importorskip("litert_torch", reason="LiteRT export needs the [mobile] extra")
    from mobilenetv2.formats.tflite import convert_nhwc
    from mobilenetv2.spec import Preprocessing
    from mobilenetv2.weights import CheckpointMeta

    class Plain(torch.nn.Module):
        in_chans = 3

        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv2d(3, 8, 3, 1, 1), torch.nn.Conv2d(8, 16, 3, 1, 1)
            self.fc = torch.nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            return self.fc(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))

    source, out = tmp_path / "plain.tflite", tmp_path / "plain.safetensors"
    source.write_bytes(convert_nhwc(Plain().eval(), CheckpointMeta(architecture={}, preprocessing=Preprocessing(input_size=32))))
    capsys.readouterr()  # the exporter's own warnings
    assert main(["convert", str(source), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "this is not a MobileNet V1/V2 file: found 2 CONV_2D, 1 FULLY_CONNECTED" in err and "no depthwise conv" in err
    assert not out.exists()
