"""`mobilenetv2 train` on the command line: YAML + flags, and one clear error line per bad input."""

from __future__ import annotations

import pytest
import yaml

from mobilenetv2.cli import build_parser, main
from mobilenetv2.cli.train import config_from_args


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("mobilenetv2 train: error:") and "\n" not in err, err
    return err


def test_flags_override_yaml(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 0.01\nepochs: 7\noptimizer: adamw\nchannels_last: true\n")
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "c.yaml"), "--lr", "0.2", "--no-channels-last"])
    cfg = config_from_args(args)
    assert (cfg.lr, cfg.epochs, cfg.optimizer, cfg.channels_last) == (0.2, 7, "adamw", False)


@pytest.mark.parametrize(("argv", "message"), [
    (["--data", "/no/such/folder"], "/no/such/folder"),
    (["--lr", "-0.1"], "lr must be > 0"),
    (["--freeze", "stage12"], "freeze must be one of"),
    (["--resume", "/no/such/run"], "cannot resume"),
    (["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs CUDA"),
])
def test_bad_input_is_one_line(argv, message, capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *argv]) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize(("text", "message"), [
    ("lr: [0.1\n", "is not valid YAML"),
    ("learning_rate: 0.1\n", "unknown training option 'learning_rate'"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("epochs: ten\n", "epochs must be an integer"),
])
def test_bad_yaml_is_one_line(text, message, capsys, tmp_path):
    (tmp_path / "c.yaml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    assert message in one_error_line(capsys)


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--learning-rate", "0.1"])
    assert exc.value.code == 2 and "unrecognized arguments: --learning-rate" in capsys.readouterr().err


def test_saved_config_is_a_valid_config(tmp_path):
    from mobilenetv2.training import TrainConfig

    TrainConfig(epochs=3).to_yaml(tmp_path / "c.yaml")
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["epochs"] == 3
