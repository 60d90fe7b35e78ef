"""The training install (the base and [torch]) trains, evaluates and predicts; deploy commands name the extra they
need. The runtime install (the base and [runtime], no torch) predicts and serves exported files of every task,
evaluates a classifier on a folder, and names the [torch] extra for what needs it.

Installing torch from scratch takes minutes and gigabytes, so each fresh venv gets exactly the distributions in the
closure of its pyproject requirements, linked from this venv's site-packages; nothing else is importable there.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow  # every test here takes more than ~10 s

tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("onnx", "onnxruntime", "onnxscript", "optuna", "matplotlib", "tensorboard", "timm", "keras", "h5py",
            "ai_edge_litert", "executorch", "fastapi")


def requirements(*extras: str) -> list[Requirement]:
    """The base dependencies and those of ``extras`` (an extra naming others, ``mobilenetv2[...]``, brings theirs)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found, todo, seen = [Requirement(r) for r in project["dependencies"]], list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in project["optional-dependencies"][extra]:
            req = Requirement(line)
            if canonicalize_name(req.name) == "mobilenetv2":
                todo += sorted(req.extras)
            else:
                found.append(req)
    return found


def core_requirements() -> list[Requirement]:
    """The training user's one line: pip install 'mobilenetv2[torch]'."""
    return requirements("torch")


def closure(requirements: list[Requirement]) -> dict[str, md.Distribution]:
    """Every installed distribution the requirements need, recursively; requirements of extras not asked for skipped."""
    found: dict[str, md.Distribution] = {}
    todo = [(r.name, frozenset(r.extras)) for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
    done = set()
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in done:
            continue
        done.add((canonicalize_name(name), extras))
        dist = found.setdefault(canonicalize_name(name), md.distribution(name))
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((req.name, frozenset(req.extras)))
    return found


def top_level_entries(dist: md.Distribution) -> set[Path]:
    """The site-packages entries of ``dist``: packages, modules, .dist-info and *.libs folders."""
    site = Path(dist.locate_file(""))
    tops = set()
    for f in dist.files or []:
        parts = Path(f).parts
        if parts and parts[0] != ".." and parts[0] != "__pycache__":
            tops.add(site / parts[0])
    return {t for t in tops if t.exists()}


def link_closure(dists: dict[str, md.Distribution], site: Path) -> None:
    """Symlink each distribution's entries; a folder shared with a distribution outside the closure is linked by item."""
    owners: dict[Path, set[str]] = {}
    for dist in md.distributions():
        for top in top_level_entries(dist):
            owners.setdefault(top, set()).add(canonicalize_name(dist.metadata["Name"]))
    for dist in dists.values():
        for top in top_level_entries(dist):
            target = site / top.name
            if owners[top] <= set(dists):
                if not target.exists():
                    target.symlink_to(top)
                continue
            target.mkdir(exist_ok=True)  # a namespace folder: only this distribution's own items
            own = {Path(f).parts[1] for f in dist.files or [] if Path(f).parts[0] == top.name and len(Path(f).parts) > 2}
            for item in own:
                if not (target / item).exists():
                    (target / item).symlink_to(top / item)


def make_core_venv(venv: Path, wanted: list[Requirement] | None = None) -> Path:
    """A fresh venv holding the closure of ``wanted`` (default: the training install) and the project (editable), and
    nothing else; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    link_closure(closure(core_requirements() if wanted is None else wanted), site)
    build = closure([Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]])
    build_links = [site / t.name for d in build.values() for t in top_level_entries(d) if not (site / t.name).exists()]
    link_closure(build, site)  # setuptools, for the build only
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    installed = subprocess.run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(ROOT)],
                               capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stderr
    for link in build_links:
        link.unlink()
    return python


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    return make_core_venv(tmp_path_factory.mktemp("core") / "venv")


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run([python, *args], cwd=cwd, env={**env, "PYTHONNOUSERSITE": "1"}, capture_output=True,
                          text=True, timeout=300)


def test_closure_is_complete_and_has_no_optional_package(core_venv, tmp_path):
    pip = [sys.executable, "-m", "pip", "--python", str(core_venv), "check"]
    checked = subprocess.run(pip, capture_output=True, text=True, timeout=120)  # mobilenetv2's requirements included
    assert checked.returncode == 0, checked.stdout + checked.stderr
    probe = ("import importlib.util, sys\n"
             f"print(' '.join(m for m in {OPTIONAL!r} if importlib.util.find_spec(m)))\n"
             "from importlib.metadata import version\n"
             f"print(' '.join(version(r) for r in {[r.name for r in core_requirements()]!r}))")
    out = run(core_venv, "-c", probe, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    importable, versions = out.stdout.splitlines()
    assert importable == ""
    for req, version in zip(core_requirements(), versions.split()):
        assert req.specifier.contains(version, prereleases=True), f"{req} but {version} in the core venv"


@pytest.mark.slow
def test_core_install_trains_evaluates_predicts(core_venv, tmp_path):
    cli = ("-m", "mobilenetv2")
    trained = run(core_venv, *cli, "train", "--data", "digits", "--epochs", "1", "--limit-batches", "2", "--width-mult",
                  "0.35", "--input-size", "32", "--batch-size", "16", "--workers", "0", "--out", "run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "epoch 1/1" in trained.stderr and "pip install 'mobilenetv2[plots]'" in trained.stderr
    checkpoint = tmp_path / "run" / "best.safetensors"
    assert checkpoint.is_file() and not (tmp_path / "run" / "curves.png").exists()

    evaluated = run(core_venv, *cli, "evaluate", str(checkpoint), "--data", "digits", "--out", "eval", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (tmp_path / "eval" / "report.md").is_file() and not list((tmp_path / "eval").glob("*.png"))

    from PIL import Image

    Image.new("RGB", (32, 32), "white").save(tmp_path / "blank.png")
    predicted = run(core_venv, *cli, "predict", str(checkpoint), "blank.png", "--format", "jsonl", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert '"blank.png"' in predicted.stdout or "blank.png" in predicted.stdout

    exported = run(core_venv, *cli, "export", str(checkpoint), "--format", "onnx", "--out", "m.onnx", cwd=tmp_path)
    assert exported.returncode == 2
    assert exported.stderr.count("\n") == 1 and "pip install 'mobilenetv2[deploy]'" in exported.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_console_script_works_in_the_core_venv(core_venv, tmp_path):
    out = run(core_venv, str(core_venv.parent / "mobilenetv2"), "--help", cwd=tmp_path)
    assert out.returncode == 0 and "COMMAND" in out.stdout


# -- the runtime install: exported files without torch -----------------------------------------------------------------
RUNTIME_TASKS = {  # task -> (model, input size, class names, what its JSON record holds)
    "classification": ("mobilenet_v2", 64, ["a", "b", "c"], "labels"),
    "segmentation": ("deeplabv3_mobilenet_v2", 65, ["background", "a", "b"], "fractions"),
    "detection": ("ssdlite_mobilenet_v2", 96, ["background", "a", "b"], "detections"),
}


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    return make_core_venv(tmp_path_factory.mktemp("runtime") / "venv", requirements("runtime"))


@pytest.fixture(scope="module")
def exported_files(tmp_path_factory) -> dict[str, list[Path]]:
    """An .onnx and a .tflite file of each task, exported here (the full install) from tiny random models."""
    import torch

    from mobilenetv2.cli import main
    from mobilenetv2.models import create_model
    from mobilenetv2.spec import Preprocessing
    from mobilenetv2.weights import save_checkpoint

    pytest.importorskip("onnxruntime")
    pytest.importorskip("litert_torch", reason="the LiteRT export comes with the [mobile] extra")
    folder, files = tmp_path_factory.mktemp("exported"), {}
    for task, (name, size, names, _) in RUNTIME_TASKS.items():
        torch.manual_seed(0)
        model = create_model(name, num_classes=3, width_mult=0.35).eval()
        pre = Preprocessing(input_size=size, crop_pct=1.0, resize_mode="squash")
        checkpoint = save_checkpoint(folder / f"{task}.safetensors", model, names, pre, task=task)
        files[task] = [folder / f"{task}.onnx", folder / f"{task}.tflite"]
        for out in files[task]:
            assert main(["export", str(checkpoint), "--format", out.suffix[1:], "--out", str(out)]) == 0
    return files


def test_runtime_install_has_no_torch_and_names_its_extra(runtime_venv, tmp_path):
    probe = ("import importlib.util\n"
             "print(' '.join(m for m in ('torch', 'torchvision', 'safetensors') if importlib.util.find_spec(m)))")
    out = run(runtime_venv, "-c", probe, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr
    for args in (["train", "--data", "digits", "--epochs", "1"], ["info", "--model", "mobilenet_v2"]):
        refused = run(runtime_venv, "-m", "mobilenetv2", *args, cwd=tmp_path)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert "pip install 'mobilenetv2[torch]'" in refused.stderr


def test_runtime_install_predicts_every_task_from_onnx_and_tflite(runtime_venv, exported_files, tmp_path):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    for task, files in exported_files.items():
        for path in files:
            predicted = run(runtime_venv, "-m", "mobilenetv2", "predict", str(path), "photo.jpg", "--format", "jsonl",
                            cwd=tmp_path)
            assert predicted.returncode == 0, predicted.stderr
            assert RUNTIME_TASKS[task][3] in json.loads(predicted.stdout.splitlines()[0]), predicted.stdout


def test_runtime_install_serves_and_evaluates(runtime_venv, exported_files, tmp_path, free_port):
    from PIL import Image

    rng = np.random.default_rng(1)
    for name in RUNTIME_TASKS["classification"][2]:
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)).save(tmp_path / "data" / name / f"{i}.jpg")
    onnx_file = exported_files["classification"][0]
    evaluated = run(runtime_venv, "-m", "mobilenetv2", "evaluate", str(onnx_file), "--data", "data", "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["num_samples"] == 6
    server = subprocess.Popen([runtime_venv, "-m", "mobilenetv2", "serve", str(exported_files["detection"][1]), "--port",
                               str(free_port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))})
    try:
        answer = post_when_ready(f"http://127.0.0.1:{free_port}", (tmp_path / "data" / "a" / "0.jpg").read_bytes())
        assert answer["task"] == "detection" and answer["backend"] == "litert" and "detections" in answer
    finally:
        server.terminate()
        server.wait(timeout=30)


def post_when_ready(url: str, body: bytes, seconds: float = 120) -> dict:
    """One image through the server's /v1/predict once /readyz says ready."""
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as ready:
                if ready.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    request = urllib.request.Request(url + "/v1/predict", data=body, headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())
