"""Shared fixtures: the real data folder beside the checkout, small thread counts for a 2-core machine, a tiny
checkpoint and its ONNX export (tests/export, tests/formats, tests/backends), and small image folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

THREADS = 2
torch.set_num_threads(THREADS)

pytest_plugins = ["pytester"]  # tests/test_slow_guard.py runs the guard below on a made-up test file

# -- the slow guard: a test not marked slow whose call runs longer than this fails, so `make check` stays fast ------------
SLOW_GUARD_S = 15.0
NO_SLOW_GUARD = "MOBILENETV2_NO_SLOW_GUARD"  # =1: no guard (a machine too loaded to time anything)
SLOW_GUARD_LIMIT = "MOBILENETV2_SLOW_GUARD_S"  # seconds, instead of SLOW_GUARD_S


def slow_guard_limit() -> float:
    """The call time allowed to a test not marked slow, stretched by the machine's load (a loaded machine is no reason
    to fail a 3 s test): SLOW_GUARD_S (or $MOBILENETV2_SLOW_GUARD_S) times max(1, 1-minute load / cores)."""
    base = float(os.environ.get(SLOW_GUARD_LIMIT) or SLOW_GUARD_S)
    return base * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A passing test not marked slow whose call took longer than ``slow_guard_limit()`` becomes a failure that names
    the marker to add (unless $MOBILENETV2_NO_SLOW_GUARD=1)."""
    report = yield
    if call.when != "call" or not report.passed or os.environ.get(NO_SLOW_GUARD) == "1" or item.get_closest_marker("slow"):
        return report
    limit = slow_guard_limit()
    if call.duration > limit:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {call.duration:.1f} s (over {limit:.0f} s) and is not marked slow: add "
                           f"@pytest.mark.slow (or set {NO_SLOW_GUARD}=1 on a machine too loaded to time)")
    return report


@pytest.fixture(autouse=True)
def _isolate_torch_globals():
    """Every test starts with the same thread count and determinism flag, whatever the previous one set:
    results that must match bit for bit (resume, DDP) depend on the reduction order, hence on threads."""
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(False)
    yield
    torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _isolate_backend_choices(tmp_path_factory, monkeypatch):
    """--backend auto's cached choices go to a folder of the test session, not to ~/.cache/mobilenetv2."""
    from mobilenetv2.formats import auto

    monkeypatch.setattr(auto, "cache_path", lambda: tmp_path_factory.getbasetemp() / "cache" / auto.CACHE_FILE)


@pytest.fixture
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (not a fixed one: parallel workers and other checkouts run at the same time)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the checkout; tests needing it skip when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (only CI and developer machines have ../shared/data)")
    return SHARED_DATA


SHAPE_CLASSES = ["background", "square", "disc"]


def shapes_image(rng: np.random.Generator, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A noisy background with a red square (class 1) and a blue disc (class 2); the mask marks them exactly."""
    image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    x, y = rng.integers(2, size // 2, 2)
    s = int(rng.integers(6, size // 2))
    image[y:y + s, x:x + s] = (220, 30, 30)
    mask[y:y + s, x:x + s] = 1
    cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 8)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    image[disc] = (30, 30, 220)
    mask[disc] = 2
    return image, mask


def write_shapes(root: Path, counts: dict[str, int], seed: int = 0, size: int = 40) -> Path:
    """A segmentation folder: root/{split}/images/*.png, root/{split}/masks/*.png (class indices), root/classes.txt."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(count):
            image, mask = shapes_image(rng, size)
            Image.fromarray(image).save(root / split / "images" / f"{split}{i}.png")
            Image.fromarray(mask, "L").save(root / split / "masks" / f"{split}{i}.png")
    (root / "classes.txt").write_text("\n".join(SHAPE_CLASSES) + "\n")
    return root


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory) -> Path:
    """12 training and 4 validation 40x40 images of a square and a disc, with exact masks (3 classes)."""
    return write_shapes(tmp_path_factory.mktemp("shapes"), {"train": 12, "val": 4})


VOC_OBJECT = ("<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
              "</bndbox></object>")


def voc_xml(width: int, height: int, objects: list[tuple[str, int, int, int, int]]) -> str:
    """A Pascal VOC annotation (only what the readers need)."""
    body = "".join(VOC_OBJECT.format(name=n, x0=a, y0=b, x1=c, y1=d) for n, a, b, c, d in objects)
    return (f"<annotation><filename>x.tif</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{body}</annotation>")


def boxes_image(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, list[tuple[str, int, int, int, int]]]:
    """A noisy background with a red square and a blue rectangle, and their exact boxes (xyxy, pixels)."""
    image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    objects = []
    for name, colour, (w, h) in (("square", (220, 30, 30), (16, 16)), ("bar", (30, 30, 220), (24, 10))):
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        image[y:y + h, x:x + w] = colour
        objects.append((name, x, y, x + w, y + h))
    return image, objects


def write_boxes(root: Path, counts: dict[str, int], seed: int = 0, size: int = 64) -> Path:
    """A detection folder: root/{split}/NAME.png with NAME.xml (Pascal VOC) beside it; classes bar and square."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (root / split).mkdir(parents=True)
        for i in range(count):
            image, objects = boxes_image(rng, size)
            Image.fromarray(image).save(root / split / f"{split}{i}.png")
            (root / split / f"{split}{i}.xml").write_text(voc_xml(size, size, objects))
    return root


@pytest.fixture(scope="session")
def boxes_folder(tmp_path_factory) -> Path:
    """12 training and 4 validation 64x64 images with a square and a bar each, boxes in Pascal VOC XML."""
    return write_boxes(tmp_path_factory.mktemp("boxes"), {"train": 12, "val": 4})


# -- a tiny checkpoint (MobileNetV2 0.35, 2 classes, 64 px) and its ONNX export, built once per session -----------------
def _randomise_bn(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so folding them is really tested."""
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator) * 0.1)


@pytest.fixture(scope="session")
def randomise_bn():
    """``randomise_bn(model)``: non-trivial BatchNorm statistics (live activations, for int8 ranges too)."""
    return _randomise_bn


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> Path:
    """``build(path)`` once per test run, even across pytest-xdist workers (the first builds under a lock in the run's
    temporary folder, the others reuse its file): for session fixtures whose file costs seconds, an export say."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # the workers' folders share this parent
    path, done = root / "built-once" / name, root / "built-once" / f"{name}.done"
    path.parent.mkdir(exist_ok=True)
    with FileLock(f"{path}.lock"):
        if not done.exists():
            build(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """ants/bees, 64 px, random weights with non-trivial BatchNorm (tests/inference has its own, of 3 classes)."""
    def build(path: Path) -> None:
        torch.manual_seed(0)
        model = create_model("mobilenet_v2", width_mult=0.35, num_classes=2)
        _randomise_bn(model)
        save_checkpoint(path, model, class_names=["ants", "bees"], preprocessing=Preprocessing(input_size=64))

    return built_once(tmp_path_factory, "tiny.safetensors", build)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """``tiny_checkpoint`` exported to ONNX."""
    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.weights import load_checkpoint

    def build(path: Path) -> None:
        ckpt = load_checkpoint(tiny_checkpoint)
        export_model(ckpt.model, path, "onnx", meta=ckpt.meta)

    return built_once(tmp_path_factory, "tiny.onnx", build)
