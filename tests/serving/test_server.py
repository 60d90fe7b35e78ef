"""The HTTP server on a real socket (uvicorn in a thread): the API, batching across requests without mixing answers,
bad input and overload answered in one JSON line while the server keeps serving, and every task through the seam."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.data import Preprocessing
from mobilenetv2.models import create_model
from mobilenetv2.weights import save_checkpoint

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from mobilenetv2.serving import upload  # noqa: E402
from mobilenetv2.serving.app import ServeOptions, create_app  # noqa: E402
from mobilenetv2.serving.model import load_served  # noqa: E402


@contextmanager
def serving(predictor, card, options: ServeOptions):
    """The app on 127.0.0.1 at a free port, in a background thread; yields the base URL once /readyz says ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(predictor, card, options), host="127.0.0.1", port=port,
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if call(url + "/readyz")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def call(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict | bytes, dict]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body, status, got = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        body, status, got = err.read(), err.code, dict(err.headers)
    try:
        return status, json.loads(body), got
    except ValueError:
        return status, body, got


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def photos(count: int, size: int = 48) -> list[bytes]:
    rng = np.random.default_rng(7)
    return [png(rng.integers(0, 256, (size, size + i, 3), dtype=np.uint8)) for i in range(count)]


def multipart(field: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "mobilenetv2test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=5)
    return save_checkpoint(tmp_path_factory.mktemp("serve") / "cls.safetensors", model, [f"<b>c{i}</b>" for i in range(5)],
                           Preprocessing(input_size=64, crop_pct=1.0))


@pytest.fixture(scope="module")
def server(classifier_file):
    predictor, card = load_served(str(classifier_file))
    with serving(predictor, card, ServeOptions(max_batch=8, max_wait_ms=40)) as url:
        yield url, predictor


def test_model_card_health_metrics_docs_and_page(server):
    url, _ = server
    assert call(url + "/healthz")[0] == 200 and call(url + "/readyz") == (200, {"ready": True}, call(url + "/readyz")[2])
    status, card, _ = call(url + "/v1/model")
    assert status == 200 and card["task"] == "classification" and card["backend"] == "torch"
    assert card["class_names"][0] == "<b>c0</b>" and card["preprocessing"]["input_size"] == 64
    assert card["parameters"] > 0 and card["multiply_adds"] > 0
    assert call(url + "/openapi.json")[0] == 200
    page = call(url + "/")[1]
    assert b"/static/app.js" in page and b"cdn" not in page.lower()
    script = call(url + "/static/app.js")[1]
    assert b"textContent" in script and b"innerHTML" not in script  # class names are never parsed as HTML
    metrics = call(url + "/metrics")[1].decode()
    for name in ("mobilenetv2_requests_total", "mobilenetv2_request_latency_seconds", "mobilenetv2_batch_size",
                 "mobilenetv2_queue_depth", "mobilenetv2_errors_total"):
        assert name in metrics, name


def test_concurrent_requests_are_batched_and_never_mixed(server):
    url, predictor = server
    images = photos(24)
    expected = [predictor.predict(Image.open(io.BytesIO(b)).convert("RGB"), top_k=3)[0] for b in images]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda b: call(url + "/v1/predict?top_k=3", b, {"Content-Type": "image/png"}), images))
    for (status, answer, _), want in zip(answers, expected):
        assert status == 200, answer
        assert answer["labels"] == want.labels
        np.testing.assert_allclose(answer["probabilities"], want.probabilities, atol=1e-4)
        assert answer["latency_ms"] > 0 and answer["task"] == "classification"
    metrics = call(url + "/metrics")[1].decode()
    count = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("mobilenetv2_batch_size_count")))
    total = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("mobilenetv2_batch_size_sum")))
    assert total / count > 1.5  # requests shared forward passes


def bomb() -> bytes:
    """A valid PNG header claiming 30000 x 30000 pixels (a decompression bomb): a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def test_bad_input_is_a_json_4xx_and_the_server_keeps_serving(server, monkeypatch):
    url, _ = server
    good = photos(1)[0]
    monkeypatch.setattr(upload, "MAX_BODY_BYTES", 50_000)
    cases = {
        "not an image": (b"hello, not an image", {}, 400, "not a readable image"),
        "truncated": (good[: len(good) // 2], {}, 400, "not a readable image"),
        "bomb": (bomb(), {}, 400, "limit"),
        "too large": (b"\0" * 60_000, {}, 413, "limit of 50,000"),
        "empty": (b"", {"Content-Type": "image/png"}, 400, "empty"),
        "wrong field": (*multipart("photo", good), 422, "'file'"),
    }
    for name, (body, headers, status, text) in cases.items():
        got, answer, _ = call(url + "/v1/predict", body, headers)
        assert got == status and text in answer["error"], (name, answer)
        assert "\n" not in answer["error"] and "BytesIO" not in answer["error"], name
        assert call(url + "/v1/predict", good, {"Content-Type": "image/png"})[0] == 200, f"after {name}"
    body, headers = multipart("file", good)
    assert call(url + "/v1/predict", body, headers)[0] == 200
    assert call(url + "/v1/predict?top_k=0", good)[0] == 422


def test_full_queue_answers_503_with_retry_after_and_the_api_key_is_required(classifier_file):
    predictor, card = load_served(str(classifier_file))
    slow = predictor.logits

    def logits(batch):
        time.sleep(0.3)
        return slow(batch)

    predictor.logits = logits
    options = ServeOptions(max_batch=1, max_wait_ms=0, max_queue=2, api_key="s3cret")
    with serving(predictor, card, options) as url:
        good = photos(1)[0]
        assert call(url + "/v1/predict", good)[0] == 401
        key = {"X-API-Key": "s3cret"}
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda _: call(url + "/v1/predict", good, key), range(8)))
        statuses = sorted(a[0] for a in answers)
        assert 200 in statuses and 503 in statuses, statuses
        busy = next(a for a in answers if a[0] == 503)
        assert busy[2].get("retry-after") == "1" or busy[2].get("Retry-After") == "1"
        assert call(url + "/v1/predict", good, {"Authorization": "Bearer s3cret"})[0] == 200


def test_each_prediction_is_counted_once_by_status_and_kind(classifier_file):
    predictor, card = load_served(str(classifier_file))
    fast, delay = predictor.logits, []

    def logits(batch):
        time.sleep(sum(delay))
        return fast(batch)

    predictor.logits = logits
    key, good = {"X-API-Key": "k"}, photos(1)[0]
    with serving(predictor, card, ServeOptions(api_key="k", timeout_s=0.2)) as url:
        statuses = [call(url + path, body, headers)[0] for path, body, headers in [
            ("/v1/predict", good, key), ("/v1/predict", good, {}), ("/v1/predict?top_k=0", good, key),
            ("/v1/predict", b"not an image", key), ("/v1/predict", b"", key)]]
        delay.append(1.0)
        statuses.append(call(url + "/v1/predict", good, key)[0])
        call(url + "/static/nope.js")  # not a prediction: not counted
        metrics = call(url + "/metrics")[1].decode()
    assert statuses == [200, 401, 422, 400, 400, 504]
    counted = dict(line.rsplit(" ", 1) for line in metrics.splitlines()
                   if line.startswith(("mobilenetv2_requests_total", "mobilenetv2_errors_total",
                                       "mobilenetv2_request_latency_seconds_count")))
    assert {k: float(v) for k, v in counted.items()} == {
        'mobilenetv2_requests_total{status="200"}': 1, 'mobilenetv2_requests_total{status="401"}': 1,
        'mobilenetv2_requests_total{status="422"}': 1, 'mobilenetv2_requests_total{status="400"}': 2,
        'mobilenetv2_requests_total{status="504"}': 1, 'mobilenetv2_errors_total{kind="401"}': 1,
        'mobilenetv2_errors_total{kind="422"}': 1, 'mobilenetv2_errors_total{kind="bad_image"}': 1,
        'mobilenetv2_errors_total{kind="400"}': 1, 'mobilenetv2_errors_total{kind="504"}': 1,
        "mobilenetv2_request_latency_seconds_count": 6}


def test_segmentation_and_detection_answer_through_the_task(tmp_path):
    image = photos(1, size=70)[0]
    seg = save_checkpoint(tmp_path / "seg.safetensors", create_model("deeplabv3_mobilenet_v2", width_mult=0.35, num_classes=3),
                          ["background", "a", "b"], Preprocessing(input_size=64, crop_pct=1.0, resize_mode="squash"),
                          task="segmentation")
    predictor, card = load_served(str(seg))
    with serving(predictor, card, ServeOptions()) as url:
        status, answer, _ = call(url + "/v1/predict", image)
    assert status == 200 and answer["task"] == "segmentation" and abs(sum(answer["fractions"].values()) - 1) < 1e-3
    mask = Image.open(io.BytesIO(base64.b64decode(answer["mask_png"])))
    assert mask.size == (70, 70) and mask.mode == "P"
    det = save_checkpoint(tmp_path / "det.safetensors", create_model("ssdlite_mobilenet_v2", width_mult=0.35, num_classes=3),
                          ["background", "a", "b"], Preprocessing(input_size=64, crop_pct=1.0, resize_mode="squash",
                                                                    tile=64), task="detection")
    predictor, card = load_served(str(det))
    predictor.configure(score_threshold=0.0)
    with serving(predictor, card, ServeOptions()) as url:
        status, answer, _ = call(url + "/v1/predict", image)
    assert status == 200 and answer["task"] == "detection" and answer["tiles"] == 4
    assert answer["detections"] and all(set(d) >= {"label", "score", "box"} for d in answer["detections"])


@pytest.mark.slow
def test_onnx_backend_serves_the_same_answers(classifier_file):
    pytest.importorskip("onnxruntime")
    image = photos(1)[0]
    answers = []
    engines = [("torch", "torch"), ("onnxruntime", "onnxruntime")]
    engines += [("openvino", "openvino")] if importlib.util.find_spec("openvino") else []
    for backend, name in engines:
        predictor, card = load_served(str(classifier_file), backend=backend)
        with serving(predictor, card, ServeOptions()) as url:
            status, answer, _ = call(url + "/v1/predict?top_k=2", image)
            assert status == 200 and answer["backend"] == name
            answers.append(answer)
        assert card["parameters"] > 0 and card["precision"] == "fp32"
        assert card["format"] == {"torch": "checkpoint", "onnxruntime": "onnx", "openvino": "openvino"}[name]
    for other in answers[1:]:
        assert answers[0]["labels"] == other["labels"]
        np.testing.assert_allclose(answers[0]["probabilities"], other["probabilities"], atol=1e-4)


@pytest.mark.slow
def test_an_onnx_file_is_served_on_the_backend_auto_chose_and_the_card_says_why(classifier_file, tmp_path):
    pytest.importorskip("onnxruntime")
    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.weights import load_checkpoint

    ckpt = load_checkpoint(classifier_file)
    onnx = tmp_path / "cls.onnx"
    export_model(ckpt.model, onnx, "onnx", meta=ckpt.meta)
    predictor, card = load_served(str(onnx), backend="auto", threads=1)
    with serving(predictor, card, ServeOptions()) as url:
        status, shown, _ = call(url + "/v1/model")
        answer = call(url + "/v1/predict", photos(1)[0])[1]
    assert status == 200 and shown["backend"] == answer["backend"] == predictor.runtime.backend
    assert shown["backend_selection"]["by"] == "auto" and shown["precision"] == "fp32"
    if importlib.util.find_spec("openvino"):
        assert set(shown["backend_selection"]["times"]) == {"onnxruntime", "openvino"}


def test_a_one_channel_model_warms_up_and_serves(tmp_path):
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3, in_chans=1)
    gray = save_checkpoint(tmp_path / "gray.safetensors", model, ["a", "b", "c"],
                           Preprocessing(input_size=64, crop_pct=1.0, mean=(0.5,), std=(0.5,)))
    predictor, card = load_served(str(gray))
    assert predictor.input_channels == 1
    with serving(predictor, card, ServeOptions()) as url:
        assert call(url + "/readyz")[:2] == (200, {"ready": True})  # the warm-up pass took a 1-channel input
        status, card, _ = call(url + "/v1/model")
    assert status == 200 and card["architecture"]["args"]["in_chans"] == 1


def test_a_one_channel_model_answers_a_colour_photo_as_its_grayscale(tmp_path):
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3, in_chans=1)
    torch.nn.init.normal_(model.classifier[-1].weight)  # answers that differ from image to image
    gray = save_checkpoint(tmp_path / "gray.safetensors", model, ["a", "b", "c"],
                           Preprocessing(input_size=64, crop_pct=1.0, mean=(0.5,), std=(0.5,)))
    predictor, card = load_served(str(gray))
    photo = np.random.default_rng(3).integers(0, 256, (48, 60, 3), dtype=np.uint8)
    want = predictor.predict(Image.fromarray(photo).convert("L"), top_k=3)[0]
    with serving(predictor, card, ServeOptions()) as url:
        status, answer, _ = call(url + "/v1/predict?top_k=3", png(photo), {"Content-Type": "image/png"})
    assert status == 200, answer  # was a 500: the photo reached the model as 3 channels
    assert answer["labels"] == want.labels
    np.testing.assert_allclose(answer["probabilities"], want.probabilities, atol=2e-3)
