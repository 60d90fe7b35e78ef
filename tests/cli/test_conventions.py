"""Conventions every command shares: fast --help (no torch), one-line errors, no guessed abbreviations, -v/-q."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mobilenetv2.cli import COMMANDS, build_parser, main

HEAVY = ("torch", "torchvision", "numpy", "PIL", "sklearn", "yaml")

# Runs `mobilenetv2 ARGS --help` in a fresh interpreter and reports its exit code and which heavy modules it loaded.
PROBE = """
import json, sys
from mobilenetv2.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def _help_probe(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *args, "--help"], capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_does_not_import_torch(command):
    result = _help_probe(*command.split())
    assert result == {"code": 0, "loaded": []}


def test_every_command_refuses_abbreviations():
    subparsers = build_parser()._subparsers._group_actions[0].choices
    assert set(subparsers) == set(COMMANDS)
    assert all(p.allow_abbrev is False for p in subparsers.values())


@pytest.mark.parametrize("argv", [["train", "--epoch", "3"], ["train", "--epochs", "1", "--batch", "8"]])
def test_prefix_of_an_option_is_not_taken_for_it(argv):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_misspelt_option_is_one_line_with_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epoch", "3"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == "mobilenetv2 train: error: unrecognized arguments: --epoch 3 (did you mean --epochs?)\n"


@pytest.mark.parametrize("argv, message", [
    (["train", "--bogus"], "mobilenetv2 train: error: unrecognized arguments: --bogus\n"),
    (["export"], "mobilenetv2 export: error: the following arguments are required: checkpoint\n"),
    (["train", "--epochs", "x"], "mobilenetv2 train: error: argument --epochs: invalid int value: 'x'\n"),
    ([], "mobilenetv2: error: the following arguments are required: COMMAND\n"),
])
def test_usage_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and capsys.readouterr().err == message


@pytest.mark.parametrize("argv, verbosity", [
    (["info", "--list"], 0), (["-q", "info", "--list"], -1), (["info", "--list", "-q"], -1),
    (["-v", "info", "--list"], 1), (["-vv", "info", "-q", "--list"], 1),
])
def test_verbosity_flags_before_or_after_the_command(argv, verbosity):
    args = build_parser().parse_args(argv)
    assert args.verbose - args.quiet == verbosity
