import json

from mobilenetv2.cli import main


def test_benchmark_times_every_path_but_compile(capsys):
    code = main(["benchmark", "--width", "0.35", "--resolution", "32", "--num-classes", "10", "--rounds", "2",
                 "--batch", "1", "2", "--no-compile", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    names = [p["name"] for p in report["paths"]]
    assert names == ["torchvision", "eager", "channels_last", "bn_folded", "onnx", "int8"]
    for p in report["paths"]:
        assert set(p["median_ms"]) == {"1", "2"} and all(v > 0 for v in p["median_ms"].values())
        assert p["size_mb"] > 0
    sizes = {p["name"]: p["size_mb"] for p in report["paths"]}
    assert sizes["int8"] < sizes["onnx"] / 2
    assert report["gflops"] > 0 and report["macs"] > 0 and report["cpu"].startswith("CPU: ")


def test_benchmark_table_has_ratios(capsys):
    assert main(["benchmark", "--width", "0.35", "--resolution", "32", "--num-classes", "10", "--rounds", "1",
                 "--batch", "1", "--paths", "torchvision", "bn_folded"]) == 0
    out = capsys.readouterr().out
    assert "b1 vs torchvision" in out and "1.00x" in out and "compute limit" in out
    cpu, runtimes = out.splitlines()[:2]
    assert cpu.startswith("CPU: ") and "int8" in cpu and runtimes.startswith("backends: torch") and "XNNPACK" in runtimes


def test_benchmark_rejects_bad_threads(capsys):
    assert main(["benchmark", "--width", "0.35", "--resolution", "32", "--threads", "0"]) == 2
    assert "mobilenetv2 benchmark: error:" in capsys.readouterr().err
