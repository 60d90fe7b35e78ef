import json

import pytest

from mobilenetv2.benchmarking.inference import unavailable
from mobilenetv2.cli import main


@pytest.mark.slow
def test_benchmark_times_every_path_but_compile(capsys):
    code = main(["benchmark", "--width", "0.35", "--resolution", "32", "--num-classes", "10", "--rounds", "2",
                 "--batch", "1", "2", "--no-compile", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    names = [p["name"] for p in report["paths"]]
    everything = ["torchvision", "eager", "channels_last", "bn_folded", "bf16", "onnx", "int8", "openvino", "openvino_bf16",
                  "openvino_int8"]
    assert names == [n for n in everything if unavailable(n) is None]  # bf16 needs the CPU's, OpenVINO its extra
    assert len(report["skipped"]) == len(everything) - len(names)
    for p in report["paths"]:
        assert set(p["median_ms"]) == {"1", "2"} and all(v > 0 for v in p["median_ms"].values())
        assert p["size_mb"] > 0 and 0 <= p["agreement"] <= 1 and p["max_diff"] >= 0
    sizes = {p["name"]: p["size_mb"] for p in report["paths"]}
    assert sizes["int8"] < sizes["onnx"] / 2
    precisions = {p["name"]: p["precision"] for p in report["paths"]}
    assert precisions["int8"] == "int8" and precisions["onnx"] == "fp32"
    if "openvino" in names:
        assert (precisions["openvino"], precisions["openvino_int8"]) == ("fp32", "int8")
    if "bf16" in names:  # bf16 rows are held to a bf16 matmul's limit, which AMX makes far higher than fp32's
        assert precisions["bf16"] == precisions["openvino_bf16"] == "bf16" and report["limits"]["bf16"] > report["gflops"]
    assert report["gflops"] > 0 and report["macs"] > 0 and report["cpu"].startswith("CPU: ")


@pytest.mark.slow
def test_benchmark_table_has_ratios(capsys):
    assert main(["benchmark", "--width", "0.35", "--resolution", "32", "--num-classes", "10", "--rounds", "1",
                 "--batch", "1", "--paths", "torchvision", "bn_folded"]) == 0
    out = capsys.readouterr().out
    assert "b1 vs torchvision" in out and "1.00x" in out and "compute limits" in out
    assert "| precision |" in out and "| fp32      |" in out and "100.0%" in out
    cpu, runtimes = out.splitlines()[:2]
    assert cpu.startswith("CPU: ") and "int8" in cpu and runtimes.startswith("backends: torch") and "XNNPACK" in runtimes


def test_benchmark_rejects_bad_threads(capsys):
    assert main(["benchmark", "--width", "0.35", "--resolution", "32", "--threads", "0"]) == 2
    assert "mobilenetv2 benchmark: error:" in capsys.readouterr().err


def test_file_rows_come_from_the_format_registry(monkeypatch):
    from mobilenetv2.backends import BACKENDS, BackendEntry
    from mobilenetv2.benchmarking import DEFAULT_PATHS, FileRow, file_rows
    from mobilenetv2.formats import FORMATS, FormatEntry

    rows = file_rows()
    assert rows["openvino"] == FileRow("openvino", "onnx", "openvino", "fp32")  # OpenVINO runs the same .onnx file
    assert rows["executorch_int8"] == FileRow("executorch_int8", "pte", "executorch", "int8") and "torch" not in rows
    assert [n for n in DEFAULT_PATHS if n in rows] == ["onnx", "int8", "openvino", "openvino_bf16", "openvino_int8"]
    monkeypatch.setitem(FORMATS, "newfmt", FormatEntry("newfmt", (".new",), ("newrt",), "new file", quantizes=True))
    monkeypatch.setitem(BACKENDS, "newrt", BackendEntry("newrt", "newrt:Runtime", None, None, "a new engine"))
    assert file_rows()["newrt_int8"] == FileRow("newrt_int8", "newfmt", "newrt", "int8")  # a new format reaches it


def test_a_row_on_request_runs_its_own_file(capsys):
    from mobilenetv2.extras import available

    if not available("executorch"):
        import pytest

        pytest.skip("ExecuTorch comes with the [interop] extra")
    assert main(["benchmark", "--width", "0.35", "--resolution", "32", "--num-classes", "10", "--rounds", "1",
                 "--batch", "1", "--paths", "eager", "executorch", "--json"]) == 0
    rows = {p["name"]: p for p in json.loads(capsys.readouterr().out)["paths"]}
    assert (rows["executorch"]["backend"], rows["executorch"]["precision"]) == ("executorch", "fp32")
    assert rows["executorch"]["agreement"] == 1.0 and rows["executorch"]["size_mb"] > 0
