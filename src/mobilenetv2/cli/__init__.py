"""The ``mobilenetv2`` command: one module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from mobilenetv2.errors import UserError

# Subcommand modules under mobilenetv2.cli, in the order --help lists them.
COMMANDS = ["train", "evaluate", "predict", "info", "compare", "convert", "export", "quantize", "benchmark", "tune"]


def build_parser() -> argparse.ArgumentParser:
    from mobilenetv2 import __version__

    parser = argparse.ArgumentParser(
        prog="mobilenetv2",
        description="Build, train, fine-tune, evaluate, compare, compress and deploy MobileNetV2 image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"mobilenetv2 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        if importlib.util.find_spec(f"mobilenetv2.cli.{name}") is None:
            continue
        module = importlib.import_module(f"mobilenetv2.cli.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run one subcommand; bad input becomes one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"mobilenetv2 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"mobilenetv2 {args.command}: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mobilenetv2 {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
