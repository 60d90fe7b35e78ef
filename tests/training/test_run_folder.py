"""The run folder: a finished run is never overwritten by --out, and an unwritable --out is one line before any work."""

from __future__ import annotations

import pytest

from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.training import train
from mobilenetv2.training.loop import run_folder


@pytest.mark.slow
def test_out_naming_a_finished_run_is_refused(tiny_folder, tmp_path, tiny):
    first = train(tiny(tiny_folder, tmp_path / "run", epochs=1))
    before = {p.name: p.stat().st_mtime_ns for p in first.run_dir.iterdir() if p.is_file()}
    with pytest.raises(UserError, match=r"already holds a training run \(best\.safetensors.*--resume"):
        train(tiny(tiny_folder, tmp_path / "run", epochs=1))
    assert {p.name: p.stat().st_mtime_ns for p in first.run_dir.iterdir() if p.is_file()} == before


def test_unwritable_or_file_out_is_one_line_before_any_work(tiny_folder, tmp_path, capsys):
    (tmp_path / "occupied").write_text("a file")
    assert main(["train", "--data", str(tiny_folder), "--out", str(tmp_path / "occupied"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0], err
    with pytest.raises(UserError, match="is a file"):
        run_folder(tiny_config_for(tiny_folder, tmp_path / "occupied" / "below"))


def tiny_config_for(data, out):
    from mobilenetv2.training import TrainConfig

    return TrainConfig(data=str(data), out=str(out))


@pytest.mark.slow
def test_the_learning_rate_logged_is_the_bars(tiny_folder, tmp_path, tiny):
    """metrics.csv's lr is the head's learning rate after the epoch's last step, as the progress bar shows it."""
    seen = []
    result = train(tiny(tiny_folder, tmp_path / "lr", epochs=2, backbone_lr_mult=0.1, schedule="cosine"),
                   on_epoch_end=lambda epoch, metrics: seen.append(metrics["lr"]))
    rows = (result.run_dir / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("lr")
    assert [float(r.split(",")[column]) for r in rows[1:]] == pytest.approx(seen)
    assert seen[0] == pytest.approx(0.025) and seen[1] == pytest.approx(0.0)  # head group, cosine
