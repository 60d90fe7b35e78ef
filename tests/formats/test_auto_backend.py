"""--backend auto: every backend of the file is timed and the fastest kept, said in one log line, cached per file and
CPU so that a second start does not time again; a checkpoint stays on torch; a missing backend is skipped, named."""

from __future__ import annotations

import json
import logging
import sys
import types

import numpy as np
import pytest

from mobilenetv2.backends.base import RuntimeOptions
from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.formats import auto, open_runtime

pytest.importorskip("onnxruntime", reason="ONNX files need the [deploy] extra")
pytest.importorskip("openvino", reason="the OpenVINO backend needs the [openvino] extra")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "mobilenetv2" / "backend-choice.json"
    monkeypatch.setattr(auto, "cache_path", lambda: path)
    return path


def fixed_times(times: dict[str, tuple[float, float]], calls: list):
    def timed(runtimes):
        calls.append(sorted(runtimes))
        return {name: times[name] for name in runtimes}
    return timed


def test_auto_takes_the_fastest_says_so_and_caches_it(tiny_onnx, cache, monkeypatch, caplog):
    calls: list = []
    monkeypatch.setattr(auto, "time_runtimes", fixed_times({"onnxruntime": (3.0, 2.0), "openvino": (1.0, 0.5)}, calls))
    with caplog.at_level(logging.INFO, logger="mobilenetv2"):
        runtime = open_runtime(tiny_onnx, "auto", threads=2)
    assert runtime.backend == "openvino" and calls == [["onnxruntime", "openvino"]]
    line = next(r.getMessage() for r in caplog.records if "backend auto" in r.getMessage())
    assert line.startswith("backend auto for tiny.onnx: openvino, fp32 (timed now: openvino 1.00 ms at batch 1")
    assert "onnxruntime 3.00 ms at batch 1, 2.00 ms/image at batch 8" in line and str(cache) in line
    stored = json.loads(cache.read_text())
    assert [entry["backend"] for entry in stored.values()] == ["openvino"]
    assert runtime.selection["by"] == "auto" and runtime.selection["cached"] is False

    monkeypatch.setattr(auto, "time_runtimes", lambda runtimes: pytest.fail("a cached choice must not be timed again"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mobilenetv2"):
        again = open_runtime(tiny_onnx, "auto", threads=2)
    assert again.backend == "openvino" and again.selection["cached"] is True
    assert any("(cached choice, timed" in r.getMessage() for r in caplog.records)


def test_the_cache_key_is_the_content_the_cpu_and_the_threads(tiny_onnx, tmp_path, cache, monkeypatch):
    from mobilenetv2.backends.base import RuntimeOptions
    from mobilenetv2.formats import entry_of

    entry = entry_of(tiny_onnx)
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(tiny_onnx.read_bytes())
    key = auto.cache_key(tiny_onnx, entry, RuntimeOptions(threads=2))
    assert auto.cache_key(copy, entry, RuntimeOptions(threads=2)) == key  # the same model under another name
    assert auto.cache_key(tiny_onnx, entry, RuntimeOptions(threads=1)) != key
    copy.write_bytes(tiny_onnx.read_bytes() + b"\0")
    assert auto.cache_key(copy, entry, RuntimeOptions(threads=2)) != key
    from mobilenetv2 import hardware

    other = hardware.parse_cpuinfo("model name : AMD EPYC\nflags : sse2 avx2 avx512f avx512_vnni\n")
    monkeypatch.setattr(hardware, "cpu_info", lambda: other)
    assert auto.cache_key(tiny_onnx, entry, RuntimeOptions(threads=2)) != key


def test_auto_times_for_real_and_predict_logs_the_choice(tiny_onnx, tmp_path, cache, capsys, caplog):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)).save(photo)
    with caplog.at_level(logging.INFO, logger="mobilenetv2"):
        assert main(["predict", str(tiny_onnx), str(photo), "--threads", "1", "--format", "jsonl"]) == 0  # auto: the default
    line = next(r.getMessage() for r in caplog.records if "backend auto" in r.getMessage())
    chosen = json.loads(cache.read_text())
    (entry,) = chosen.values()
    assert f"tiny.onnx: {entry['backend']}, fp32 (timed now:" in line
    assert set(entry["times"]) == {"onnxruntime", "openvino"} and all(t[0] > 0 for t in entry["times"].values())
    assert json.loads(capsys.readouterr().out)["labels"]


def test_a_checkpoint_stays_on_torch_and_a_single_backend_is_not_timed(tiny_checkpoint, cache, monkeypatch):
    monkeypatch.setattr(auto, "time_runtimes", lambda runtimes: pytest.fail("nothing to compare"))
    assert open_runtime(tiny_checkpoint, "auto", device="cpu").backend == "torch"
    assert not cache.exists()


def test_a_backend_that_is_not_installed_is_skipped_and_named(tiny_onnx, cache, monkeypatch, caplog):
    import mobilenetv2.backends.openvino as backend

    monkeypatch.setattr(backend, "_core", None)
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the [openvino] extra were not installed
    with caplog.at_level(logging.INFO, logger="mobilenetv2"):
        runtime = open_runtime(tiny_onnx, "auto")
    assert runtime.backend == "onnxruntime"
    line = next(r.getMessage() for r in caplog.records if "backend auto" in r.getMessage())
    assert "skipped openvino (openvino is not installed" in line and "nothing to compare" in line
    assert not cache.exists()  # nothing was compared: nothing to remember


def test_unknown_backends_are_one_line(tiny_onnx):
    with pytest.raises(UserError, match="unknown backend 'fastest'; allowed: torch, onnxruntime"):
        open_runtime(tiny_onnx, "fastest")


def test_a_microcontroller_interpreter_is_no_candidate(tmp_path, cache, monkeypatch, caplog):
    from mobilenetv2.backends import BACKENDS
    from mobilenetv2.formats import FORMATS
    from mobilenetv2.formats.auto import open_fastest

    opened = []
    caplog.set_level(logging.INFO, logger="mobilenetv2")

    def open_file(path, entry, backend, options):
        opened.append(backend)
        return types.SimpleNamespace(backend=backend, precision="int8", selection=None)

    assert not BACKENDS["tflm"].auto and "tflm" in FORMATS["tflite"].backends
    runtime = open_fastest(tmp_path / "m.int8.tflite", FORMATS["tflite"], RuntimeOptions(), open_file)
    assert opened == ["litert"] and runtime.selection["only"] and not caplog.records
