"""Run in a fresh process by ``compare``: peak resident memory of building one model and one batch-1 forward pass.

Usage: ``python -m mobilenetv2.benchmarking.memprobe CANDIDATE_JSON NUM_CLASSES THREADS``; prints ``{"peak_mb": ...}``.
The high-water mark is reset after the imports (Linux ``/proc/self/clear_refs``), so the figure is the model's
weights plus the forward pass's activations and workspace, not the interpreter's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main(argv: list[str]) -> None:
    import torch
    import torchvision  # noqa: F401 - imported before the baseline like everything the build needs

    from mobilenetv2.benchmarking.compare import Candidate

    spec, num_classes, threads = json.loads(argv[0]), int(argv[1]), int(argv[2])
    torch.set_num_threads(threads)
    candidate = Candidate(**spec)
    x = torch.randn(1, 3, candidate.resolution, candidate.resolution)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
    baseline = status_kb("VmRSS")
    model = candidate.build(num_classes).eval()
    with torch.inference_mode():
        model(x)
    print(json.dumps({"peak_mb": round((status_kb("VmHWM") - baseline) / 1024, 1)}))


if __name__ == "__main__":
    main(sys.argv[1:])
