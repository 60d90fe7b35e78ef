"""Start-up: the wall time of whole ``mobilenetv2 predict FILE photo.jpg`` processes (one photo), in the full install
and in the runtime install (no torch), beside a baseline git revision's code run in the full install, in one
interleaved run (every candidate once per round), medians.

    python benchmarks/startup.py --rounds 7 --baseline main --write

The runtime venv is built as ``tests/test_install.py`` builds it: the closure of ``pyproject``'s base and [runtime]
requirements linked from this venv, so torch is not importable there. ``--write`` replaces the start-up section of
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "hymenoptera_data" / "val" / "ants" / "10308379_1b6c72e180.jpg"
TITLE = "## Start-up: `predict FILE photo.jpg` without torch (`benchmarks/startup.py`)"


def clean_env(pythonpath: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**env, "PYTHONNOUSERSITE": "1", **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}


def runtime_venv(folder: Path) -> Path:
    """A fresh venv with the base and [runtime] requirements only (tests/test_install.py's helper)."""
    spec = importlib.util.spec_from_file_location("test_install", ROOT / "tests" / "test_install.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    return helper.make_core_venv(folder / "venv", helper.requirements("runtime"))


def baseline_tree(ref: str, folder: Path) -> Path:
    """The code of git revision ``ref``, unpacked into ``folder`` (its src/ goes on PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def export_model(folder: Path) -> dict[str, Path]:
    """MobileNetV2 1.0 at 224 (random weights: start-up does not depend on them) as .onnx and .tflite."""
    env = clean_env(ROOT / "src")
    subprocess.run([sys.executable, "-c", "import torch; from mobilenetv2.models import create_model; "
                    "from mobilenetv2.weights import save_checkpoint; torch.manual_seed(0); "
                    f"save_checkpoint({str(folder / 'm.safetensors')!r}, create_model('mobilenet_v2').eval())"],
                   check=True, env=env)
    files = {}
    for fmt in ("onnx", "tflite"):
        files[fmt] = folder / f"mobilenet_v2.{fmt}"
        subprocess.run([sys.executable, "-m", "mobilenetv2", "-q", "export", str(folder / "m.safetensors"), "--format", fmt,
                        "--out", str(files[fmt])], check=True, env=env, capture_output=True)
    return files


def once(python: Path, pythonpath: Path | None, args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(python), "-m", "mobilenetv2", "-q", "predict", *args, "--format", "jsonl"],
                          env=clean_env(pythonpath), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{python} predict {' '.join(args)} failed:\n{done.stderr}")
    return elapsed


def measure(candidates: dict[str, tuple[Path, Path | None, list[str]]], rounds: int) -> dict[str, list[float]]:
    for python, path, args in candidates.values():  # warm the file cache and --backend auto's cached choice
        once(python, path, args)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, (python, path, args) in candidates.items():
            times[name].append(once(python, path, args))
    return times


def machine() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "?")
    have = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if re.search(rf"\b{f}\b", flags)]
    return f"{model} ({', '.join(have)}), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"


def to_markdown(times: dict[str, list[float]], baseline: str, rounds: int, started: str) -> str:
    reference = statistics.median(times[f"{baseline}: full install, --backend auto"])
    lines = [f"Whole processes of `mobilenetv2 predict FILE photo.jpg --format jsonl` (MobileNetV2 1.0 at 224, one "
             f"{PHOTO.name} photo), {rounds} interleaved rounds, median wall time; {started}. "
             f"`--backend auto` has its choice cached (a first run made it). Baseline: `{baseline}`'s code in the same "
             "full install. The runtime install is the base and `[runtime]` (onnxruntime, LiteRT, the server): torch "
             "is not importable there.", "",
             "| install, code, backend | median (s) | min (s) | max (s) | vs baseline auto |", "|---|---|---|---|---|"]
    for name, values in times.items():
        lines.append(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} | "
                     f"{statistics.median(values) / reference:.2f} |")
    return "\n".join(lines)


def write_section(markdown: str) -> None:
    path = ROOT / "benchmarks" / "README.md"
    text, body = path.read_text(), f"<!-- section: startup -->\n{TITLE}\n\n{markdown}\n"
    pattern = re.compile(r"<!-- section: startup -->\n.*?(?=\n<!-- section: |\n## (?!Start-up)|\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: body.rstrip("\n"), text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", default="main", help="git revision whose code is the baseline (default main)")
    parser.add_argument("--write", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args()
    started = f"{machine()}, Python {platform.python_version()}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "base").mkdir()
        old, files, venv = baseline_tree(args.baseline, folder / "base"), export_model(folder), runtime_venv(folder / "rt")
        photo = str(PHOTO)
        full, ours = Path(sys.executable), ROOT / "src"
        onnx, tflite, ort = [str(files["onnx"]), photo], [str(files["tflite"]), photo], ["--backend", "onnxruntime"]
        candidates = {
            f"{args.baseline}: full install, --backend auto": (full, old, onnx),
            f"{args.baseline}: full install, --backend onnxruntime": (full, old, onnx + ort),
            "this branch: full install, --backend auto": (full, ours, onnx),
            "this branch: full install, --backend onnxruntime": (full, ours, onnx + ort),
            "this branch: runtime install, --backend auto": (venv, None, onnx),
            "this branch: runtime install, --backend onnxruntime": (venv, None, onnx + ort),
            "this branch: runtime install, .tflite on litert": (venv, None, tflite),
        }
        times = measure(candidates, args.rounds)
    markdown = to_markdown(times, args.baseline, args.rounds, started)
    print(markdown)
    if args.write:
        write_section(markdown)


if __name__ == "__main__":
    main()
