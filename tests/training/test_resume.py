"""A run killed with SIGKILL mid-training resumes to exactly the weights of an uninterrupted run."""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import load_file

from mobilenetv2.cli import main
from mobilenetv2.training import TrainConfig, train

OPTIONS = dict(width_mult=0.35, input_size=32, augment="none", batch_size=8, epochs=3, workers=0, device="cpu",
               lr=0.05, warmup_epochs=0.5, ema=0.9, deterministic=True, seed=3)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_then_resume_equals_uninterrupted_run(tiny_folder, tmp_path, kill_mid_run):
    killed = tmp_path / "killed"
    kill_mid_run(tiny_folder, killed, OPTIONS)

    assert main(["train", "--resume", str(killed)]) == 0
    straight = train(TrainConfig(data=str(tiny_folder), out=str(tmp_path / "straight"), progress=False, **OPTIONS))
    for name in ("last.safetensors", "best.safetensors"):
        resumed, reference = load_file(str(killed / name)), load_file(str(straight.run_dir / name))
        assert resumed.keys() == reference.keys()
        for key in reference:
            torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=f"{name}: {key}")
    raw = torch.load(killed / "state.pt", weights_only=True)["model"]
    ref = torch.load(straight.run_dir / "state.pt", weights_only=True)["model"]
    assert all(torch.allclose(raw[k].float(), ref[k].float(), rtol=0, atol=1e-6) for k in ref)


def test_resume_folder_without_state_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("epochs: 2\n")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no state.pt" in err
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "cannot resume" in capsys.readouterr().err
