"""Keras import: keras.applications.MobileNetV2 files made by Keras itself (torch backend, in a subprocess)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.weights.keras import convert_keras

# Only find keras here: importing it in this process would pick a backend for every other test.
needs_keras = pytest.mark.skipif(importlib.util.find_spec("keras") is None or importlib.util.find_spec("h5py") is None,
                                reason="keras and h5py are needed (pip install 'mobilenetv2[interop]')")

# Keras with random weights and randomised BatchNorm statistics, per "alpha:size" argument: saved in all three
# formats into the folder alpha<alpha>, with its logits on a random batch.
MAKE_MODELS = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    import keras

    for spec in sys.argv[2:]:
        alpha, size = float(spec.split(":")[0]), int(spec.split(":")[1])
        out = Path(sys.argv[1]) / f"alpha{alpha}"
        out.mkdir()
        keras.utils.set_random_seed(0)
        model = keras.applications.MobileNetV2(weights=None, alpha=alpha, input_shape=(size, size, 3), classes=7,
                                               classifier_activation=None)
        rng = np.random.default_rng(0)
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                c = layer.gamma.shape[0]
                layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                                   rng.uniform(0.5, 1.5, c)])
        x = rng.uniform(-1, 1, (2, size, size, 3)).astype("float32")
        np.savez(out / "io.npz", x=x, logits=np.asarray(model.predict(x, verbose=0)))
        model.save(out / "model.keras")
        model.save(out / "model.h5")
        model.save_weights(out / "model.weights.h5")
""")
SIZES = {0.35: 64, 1.3: 40}


@pytest.fixture(scope="module")
def keras_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("keras")
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "2"}  # only in the child: nothing leaks here
    specs = [f"{alpha}:{size}" for alpha, size in SIZES.items()]
    subprocess.run([sys.executable, "-c", MAKE_MODELS, str(folder), *specs], env=env, check=True,
                   capture_output=True, timeout=300)
    return folder


@pytest.mark.slow
@needs_keras
@pytest.mark.parametrize(("alpha", "name"), [(0.35, "model.keras"), (0.35, "model.h5"), (0.35, "model.weights.h5"),
                                             (1.3, "model.keras")])
def test_logits_match_keras(keras_dir, alpha, name):
    folder, size = keras_dir / f"alpha{alpha}", SIZES[alpha]
    ckpt = convert_keras(folder / name)
    args = ckpt.model.arch["args"]
    assert (args["width_mult"], args["num_classes"], args["tf_padding"], args["bn_eps"]) == (alpha, 7, True, 1e-3)
    data = np.load(folder / "io.npz")
    with torch.no_grad():
        ours = ckpt.model(torch.from_numpy(data["x"]).permute(0, 3, 1, 2)).numpy()
    assert np.abs(ours - data["logits"]).max() <= 1e-4 * max(1.0, np.abs(data["logits"]).max())
    expected_size = size if name != "model.weights.h5" else 224  # a weights-only file has no input shape
    pre = ckpt.preprocessing
    assert (pre.input_size, pre.resize_mode, pre.mean, pre.std) == (expected_size, "squash", (0.5,) * 3, (0.5,) * 3)


@pytest.mark.slow
@needs_keras
def test_labels_must_match_the_outputs(keras_dir, tmp_path):
    folder = keras_dir / "alpha0.35"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(7)) + "\n")
    assert convert_keras(folder / "model.keras", labels=labels).class_names[-1] == "class 6"
    labels.write_text("one\ntwo\n")
    with pytest.raises(UserError, match="2 labels but the model has 7 classes"):
        convert_keras(folder / "model.keras", labels=labels)


@pytest.mark.slow
@needs_keras
def test_truncated_and_foreign_files_are_rejected(keras_dir, tmp_path):
    folder = keras_dir / "alpha0.35"
    for name in ("model.keras", "model.h5"):
        broken = tmp_path / name
        broken.write_bytes((folder / name).read_bytes()[:5000])
        with pytest.raises(UserError, match="not a readable Keras"):
            convert_keras(broken)
    import h5py

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["layer_names"] = ["dense_1"]
        f.create_group("dense_1").attrs["weight_names"] = ["dense_1/kernel"]
        f["dense_1"].create_dataset("dense_1/kernel", data=np.zeros((3, 2)))
    with pytest.raises(UserError, match="layer 'dense_1' has weights but is not a layer of keras.applications.MobileNetV2"):
        convert_keras(other)


def _keras_zip(path: Path, members: dict[str, int]) -> Path:
    """A .keras-shaped zip whose members are runs of zero bytes (tiny compressed, ``size`` bytes inflated)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, size in members.items():
            archive.writestr(name, b"\0" * size)
    return path


def test_keras_zip_bombs_are_refused_before_extracting(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    from mobilenetv2.weights import keras

    monkeypatch.setattr(keras, "MAX_KERAS_BYTES", 2**20)
    bomb = _keras_zip(tmp_path / "bomb.keras", {"config.json": 10, "model.weights.h5": 3 * 2**20})
    assert bomb.stat().st_size < 2**20 // 10  # 3 MiB inflated from a few KiB
    with pytest.raises(UserError, match=r"member 'model.weights.h5' alone is 3.0 MiB uncompressed, above the limit "
                                        r"of 1.0 MiB \(not a Keras MobileNetV2 file; a zip bomb\?\)"):
        keras.convert_keras(bomb)
    many = _keras_zip(tmp_path / "many.keras", {f"part{i}": 2**19 for i in range(3)})
    with pytest.raises(UserError, match=r"its members are 1.5 MiB uncompressed, above the limit of 1.0 MiB"):
        keras.convert_keras(many)
    small = _keras_zip(tmp_path / "small.keras", {"config.json": 10, "model.weights.h5": 2**19})
    with pytest.raises(UserError, match="not a readable Keras"):  # under the limit: read, then found not to be Keras
        keras.convert_keras(small)


def test_keras_files_above_the_size_limit_are_refused(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    from mobilenetv2.weights import keras

    monkeypatch.setattr(keras, "MAX_KERAS_BYTES", 2**20)
    big = tmp_path / "big.h5"
    big.write_bytes(b"\0" * (2**20 + 2**19))
    with pytest.raises(UserError, match=r"big.h5: 1.5 MiB is above the limit of 1.0 MiB for a Keras MobileNetV2 file"):
        keras.convert_keras(big)
