"""`mobilenetv2 info` and the command-line basics."""

from __future__ import annotations

import json

import pytest

from mobilenetv2.cli import COMMANDS, build_parser, main


def test_info_table(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "| stage2     | 112x112x16 | bottleneck" in out
    assert "3,504,872 (3,470,760 without BatchNorm)" in out
    assert "300,774,272 (300.8M)" in out and "14.02 MB fp32, 3.50 MB int8" in out
    assert "activation memory (16-bit)" in out


def test_info_json(capsys):
    assert main(["info", "--model", "mobilenet_v2", "--width", "1.4", "--resolution", "192", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 6_108_776 and data["resolution"] == 192
    assert data["arch"]["args"]["width_mult"] == 1.4
    assert {"rows", "blocks", "activation_memory", "size_int8_mb", "params_without_bn"} <= set(data)


def test_info_blocks_and_list(capsys):
    assert main(["info", "--model", "mobilenet_v3_small", "--blocks"]) == 0
    assert "features.11" in capsys.readouterr().out
    assert main(["info", "--list"]) == 0
    assert "mobilenet_v2_140" in capsys.readouterr().out.split()


def test_info_checkpoint(tmp_path, capsys):
    from mobilenetv2 import create_model
    from mobilenetv2.weights import save_checkpoint

    save_checkpoint(tmp_path / "m.safetensors", create_model("mobilenet_v2_050", num_classes=4))
    assert main(["info", "--checkpoint", str(tmp_path / "m.safetensors"), "--resolution", "128"]) == 0
    assert "width_mult=0.5" in capsys.readouterr().out


def test_info_checkpoint_uses_its_input_size(tmp_path, capsys):
    from mobilenetv2 import create_model
    from mobilenetv2.spec import Preprocessing
    from mobilenetv2.weights import save_checkpoint

    path = save_checkpoint(tmp_path / "m.safetensors", create_model("mobilenet_v2_035", num_classes=2), ["a", "b"],
                           Preprocessing(input_size=96))
    assert main(["info", "--checkpoint", str(path)]) == 0
    out = capsys.readouterr().out
    assert "at 96x96 (the checkpoint's input size)" in out and "| stem " in out and "| 96x96x3 " in out
    assert main(["info", "--checkpoint", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["resolution"], data["resolution_from"]) == (96, "the checkpoint's input size")
    assert data["rows"][0]["input"] == "96x96x3"
    assert main(["info", "--checkpoint", str(path), "--resolution", "160", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["resolution"], data["resolution_from"]) == (160, "--resolution")


def test_info_model_defaults_to_224(capsys):
    assert main(["info", "--model", "mobilenet_v2_035", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["resolution"], data["resolution_from"]) == (224, "default")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "--width", "0"], "width_mult must be a number > 0"),
        (["info", "--resolution", "16"], "resolution must be an integer >= 32"),
        (["info", "--num-classes", "0"], "num_classes must be an integer >= 1"),
        (["info", "--model", "resnet"], "unknown model 'resnet'"),
        (["info", "--checkpoint", "/nonexistent.safetensors"], "checkpoint not found"),
    ],
)
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_help_everywhere(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices
    assert "info" in subcommands and set(subcommands) <= set(COMMANDS)
    for name in subcommands:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
