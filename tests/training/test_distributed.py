"""torchrun with 2 CPU processes (gloo) vs one process with the same global batch.

With ``--freeze all`` the backbone's BatchNorm layers use their running statistics in both runs, so the only
difference is how the gradient mean is summed: the classifier must agree within 1e-5. (Training BatchNorm layers
would see 8 images per process instead of 16; PyTorch's SyncBatchNorm, which would fix that, needs CUDA.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mobilenetv2.training import TrainConfig, train

pytestmark = pytest.mark.slow  # every test here takes more than ~10 s

OPTIONS = dict(width_mult=0.35, input_size=32, augment="none", epochs=2, workers=0, device="cpu", lr=0.5,
               warmup_epochs=0.0, dropout=0.0, freeze="all", seed=0, progress=False)


def test_two_processes_match_one_with_the_same_global_batch(tiny_folder, tmp_path, free_port):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in OPTIONS.items() if not isinstance(v, bool)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port),
           "-m", "mobilenetv2", "train", "--data", str(tiny_folder), "--out", str(tmp_path / "ddp"), "--no-progress",
           "--batch-size", "8", *flags]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "x2 processes" in done.stderr
    single = train(TrainConfig(data=str(tiny_folder), out=str(tmp_path / "single"), batch_size=16, **OPTIONS))
    ddp, ref = load_file(str(tmp_path / "ddp" / "last.safetensors")), load_file(str(single.run_dir / "last.safetensors"))
    assert not torch.equal(ref["classifier.1.weight"], torch.zeros_like(ref["classifier.1.weight"]))
    for key in ref:
        torch.testing.assert_close(ddp[key], ref[key], rtol=0, atol=1e-5, msg=key)
    ddp_history = (tmp_path / "ddp" / "metrics.csv").read_text().splitlines()
    assert len(ddp_history) == 3  # header + 2 epochs, written once (rank 0)
