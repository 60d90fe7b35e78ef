from mobilenetv2.benchmarking.inference import BenchmarkReport, PathResult, gflops_from_ms, matmul_gflops


def _report(onnx_ms: float) -> BenchmarkReport:
    paths = [PathResult("torchvision", 14.0, 30, {1: 20.0}, {1: 22.0}), PathResult("onnx", 14.0, 20, {1: onnx_ms}, {1: 5.0})]
    # 300M MACs at 150 GFLOP/s: the limit at batch 1 is 4.0 ms
    return BenchmarkReport("mobilenet_v2()", 224, 2, 300_000_000, 150.0, [1], 5, paths, cpu="CPU: test (x86_64)")


def test_table_starts_with_the_cpu_line_and_gives_ratios_to_the_limit():
    report = _report(8.0)
    text = report.table()
    assert text.startswith("CPU: test (x86_64)\n") and "batch 1: 4.00 ms" in text
    assert "2.00" in text and "warning" not in text and report.below_limit() == []


def test_a_path_faster_than_the_limit_is_reported_not_hidden():
    report = _report(3.0)
    assert report.below_limit() == [("onnx", 1, 0.75)]
    text = report.table()
    assert "0.75 (!)" in text
    assert "warning: faster than the measured compute limit: onnxruntime fp32 at batch 1 (0.75x the limit)" in text
    assert report.to_dict()["below_limit"] == [{"path": "onnx", "batch": 1, "ratio": 0.75}]


def test_matmul_gflops_is_positive_and_consistent_with_its_timing():
    assert matmul_gflops(1, n=128, seconds=0.05) > 0
    assert gflops_from_ms(1.0, n=1000) == 2.0 * 1000**3 / 1e-3 / 1e9


def test_int8_paths_are_not_held_to_the_fp32_limit():
    report = _report(8.0)
    report.paths.append(PathResult("int8", 3.7, 10, {1: 2.0}, {1: 2.5}, precision="int8"))  # VNNI int8 may beat an fp32 limit
    assert report.below_limit() == [] and "- (no int8 limit)" in report.table() and "warning" not in report.table()
