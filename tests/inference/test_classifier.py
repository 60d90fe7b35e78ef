"""The ``Classifier`` API: every accepted input kind, top-k, test-time augmentation, bad checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.data.preprocessing import eval_transform
from mobilenetv2.errors import UserError
from mobilenetv2.inference import Classifier

CLASSES = ["circle", "square", "triangle"]  # as in conftest.py


def test_inputs_of_every_kind_agree(tiny_checkpoint, image_folder):
    clf = Classifier.load(tiny_checkpoint, device="cpu")
    path = image_folder / "circle" / "0.png"
    pil = Image.open(path).convert("RGB")
    array = np.array(pil)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    preds = clf.predict([path, str(path), pil, array, tensor], top_k=2)
    assert [p.indices for p in preds] == [preds[0].indices] * 5
    for p in preds[1:4]:
        np.testing.assert_allclose(p.probabilities, preds[0].probabilities, rtol=1e-5)
    np.testing.assert_allclose(preds[4].probabilities, preds[0].probabilities, atol=2e-3)  # float vs uint8 resize
    assert preds[0].source == str(path) and preds[2].source is None
    assert set(preds[0].labels) <= set(CLASSES) and preds[0].probabilities[0] >= preds[0].probabilities[1]


def test_prepared_pixels_normalised_in_a_batch_match_predict(tiny_checkpoint, image_folder):
    """A server resizes per request (uint8) and normalises per batch: the same numbers as the evaluation transform."""
    clf = Classifier.load(tiny_checkpoint, device="cpu")
    images = [Image.open(image_folder / name / "0.png").convert("RGB") for name in CLASSES]
    prepared = [clf.prepare(image) for image in images]
    assert all(isinstance(inputs, np.ndarray) and inputs.dtype == np.uint8 and inputs.shape[0] == 1 for inputs, _ in prepared)
    reference = torch.stack([eval_transform(clf.preprocessing)(image) for image in images]).numpy()
    assert np.array_equal(clf.normalize(np.concatenate([inputs for inputs, _ in prepared])), reference)
    logits = clf.logits_of_pixels(np.concatenate([inputs for inputs, _ in prepared]))
    answers = [clf.finish(logits[i:i + 1], state, top_k=3) for i, (_, state) in enumerate(prepared)]
    for answer, expected in zip(answers, clf.predict(images, top_k=3)):
        assert answer.indices == expected.indices
        np.testing.assert_allclose(answer.probabilities, expected.probabilities, rtol=1e-5)


def test_single_image_batch_and_top_k_clamped(tiny_checkpoint, image_folder):
    clf = Classifier.load(tiny_checkpoint, device="cpu")
    one = clf.predict(image_folder / "square" / "1.png", top_k=10)
    assert len(one) == 1 and len(one[0].labels) == len(CLASSES)  # top_k > classes -> all classes
    assert sum(one[0].probabilities) == pytest.approx(1.0, abs=1e-5)
    batch = clf.predict(torch.rand(5, 3, 48, 48), top_k=1, batch_size=2)
    assert len(batch) == 5 and all(len(p.labels) == 1 for p in batch)


def test_tta_averages_with_the_flip(tiny_checkpoint):
    clf = Classifier.load(tiny_checkpoint, device="cpu")
    image = torch.rand(3, 64, 64)
    x = torch.from_numpy(clf.preprocess(image)[None])
    logits = [torch.from_numpy(clf.logits(np.ascontiguousarray(v.numpy()))) for v in (x, x.flip(-1))]
    expected = (logits[0].softmax(1) + logits[1].softmax(1)) / 2
    got = clf.predict(image, top_k=3, tta=True)[0]
    np.testing.assert_allclose(got.probabilities, expected[0, got.indices].numpy(), rtol=1e-5)


def test_bad_inputs(tiny_checkpoint, tmp_path):
    clf = Classifier.load(tiny_checkpoint, device="cpu")
    with pytest.raises(UserError, match="HWC"):
        clf.predict(np.zeros((4, 4, 5), dtype=np.uint8))
    with pytest.raises(UserError, match="uint8"):
        clf.predict(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(UserError, match="top_k"):
        clf.predict(torch.rand(3, 8, 8), top_k=0)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UserError, match="junk.safetensors"):
        Classifier.load(junk)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(UserError, match="truncated.safetensors"):
        Classifier.load(truncated)


def test_a_pil_photo_in_memory_is_turned_by_its_exif_orientation(tiny_checkpoint, tmp_path):
    import numpy as np
    from PIL import Image

    classifier = Classifier.load(tiny_checkpoint, device="cpu")
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)  # stored sideways: left half red, right half blue
    pixels[:, 40:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "tagged.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "tagged.jpg") as tagged:
        from_memory = classifier.preprocess(tagged)
    upright = Image.fromarray(pixels).rotate(-90, expand=True)
    assert np.abs(from_memory - classifier.preprocess(upright)).mean() < 0.1
    assert np.abs(from_memory - classifier.preprocess(Image.fromarray(pixels))).mean() > 0.5
