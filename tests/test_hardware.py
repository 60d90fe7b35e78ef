from mobilenetv2.hardware import cpu_info, describe, features_line, int8_expectation, parse_cpuinfo

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512vl avx512_vnni avx_vnni amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2
"""
HASWELL = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz
flags\t\t: fpu sse2 avx fma avx2
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def test_vnni_cpu_expects_int8_about_twice_fp32():
    info = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert info.model == "Intel(R) Xeon(R) Platinum 8480+" and info.arch == "x86_64"
    assert "amx_int8" in info.flags and info.int8_path == "AMX"  # the first processor's flags, not the second's
    line = features_line(info)
    assert "+AVX2" in line and "+AVX-512 VNNI" in line and "+AVX-VNNI" in line and "+AMX-INT8" in line
    assert line.endswith("int8 expected ~2x fp32")


def test_avx2_only_cpu_says_int8_is_barely_faster():
    info = parse_cpuinfo(HASWELL)
    assert info.int8_path is None
    line = features_line(info)
    assert "+AVX2" in line and "-AVX-512F" in line and "-AVX-512 VNNI" in line and "-AMX-INT8" in line
    assert int8_expectation(info) == "no VNNI: int8 barely faster than fp32" and line.endswith(int8_expectation(info))


def test_arm_cpu_reports_dot_product_and_i8mm():
    info = parse_cpuinfo(GRAVITON, arch="aarch64")
    assert info.is_arm and info.model == "ARM implementer 0x41 part 0xd0c"
    line = features_line(info)
    assert "+dot-product" in line and "-i8mm" in line and "AVX" not in line
    assert info.int8_path == "dot-product" and line.endswith("int8 expected ~2x fp32")
    assert parse_cpuinfo(GRAVITON.replace(" asimddp", "")).int8_path is None
    assert "no dot-product" in int8_expectation(parse_cpuinfo(GRAVITON.replace(" asimddp", "")))


def test_unreadable_cpuinfo_falls_back_to_unknown_features(tmp_path):
    info = cpu_info(str(tmp_path / "missing"))
    assert not info.flags
    assert "features unknown" in features_line(info) and "int8 speed-up unknown" in features_line(info)


def test_describe_names_the_cpu_and_the_runtimes():
    cpu, runtimes = describe().splitlines()
    assert cpu.startswith("CPU: ") and ("AVX2" in cpu or "dot-product" in cpu or "unknown" in cpu)
    assert runtimes.startswith("backends: torch ") and "XNNPACK" in runtimes and "onnxruntime" in runtimes
