"""The ``mobilenetv2`` command: one module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata

from mobilenetv2.console import setup_logging
from mobilenetv2.errors import UserError

# Subcommand modules under mobilenetv2.cli, in the order --help lists them.
COMMANDS = ["train", "evaluate", "predict", "info", "compare", "convert", "export", "quantize", "benchmark", "tune", "serve"]


class Parser(argparse.ArgumentParser):
    """argparse without guessed abbreviations (``--epoch`` is not ``--epochs``) and with one-line errors.

    Subcommand parsers are built from the same class (``add_subparsers`` uses the parent's class).
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: ANN201 - never returns
        """``PROG: error: MESSAGE`` on one line (no usage block: ``--help`` has it), exit code 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        """Unknown options are reported by the subcommand that got them, with its closest option."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = _subparsers(self).get(getattr(parsed, "command", None), self)
            parser.error(f"unrecognized arguments: {' '.join(extras)}{_suggestion(parser, extras)}")
        return parsed


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _suggestion(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    options = [o for o in parser._option_string_actions if o.startswith("--")]
    for arg in extras:
        if arg.startswith("--"):
            close = difflib.get_close_matches(arg.split("=", 1)[0], options, n=1, cutoff=0.75)
            if close:
                return f" (did you mean {close[0]}?)"
    return ""


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default, help="more messages (debug)")
    parser.add_argument("-q", "--quiet", action="count", default=default, help="warnings and errors only, no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``mobilenetv2`` parser; builds without importing torch (each command imports what it needs in ``run``)."""
    parser = Parser(
        prog="mobilenetv2",
        description="Build, train, fine-tune, evaluate, compare, compress and deploy MobileNetV2 image classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"mobilenetv2 {metadata.version('mobilenetv2')}")
    _add_verbosity(parser, 0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        if importlib.util.find_spec(f"mobilenetv2.cli.{name}") is None:
            continue
        module = importlib.import_module(f"mobilenetv2.cli.{name}")
        p = module.add_parser(sub)
        _add_verbosity(p, argparse.SUPPRESS)  # `mobilenetv2 train -q` as well as `mobilenetv2 -q train`
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run one subcommand; bad input becomes one line on stderr and exit code 2 (with ``-v``, the
    traceback and the chain of causes behind that line come first)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbosity = args.verbose - args.quiet
    setup_logging(verbosity)  # library messages (epochs, notes) as plain lines on stderr
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        return _error(args.command, str(exc), exc, verbosity)
    except FileNotFoundError as exc:
        return _error(args.command, f"file not found: {exc.filename or exc}", exc, verbosity)
    except ModuleNotFoundError as exc:
        extra = torch_extra_message(exc)
        if extra is None:
            raise
        return _error(args.command, extra, exc, verbosity)
    except KeyboardInterrupt:
        print(f"mobilenetv2 {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def torch_extra_message(exc: ModuleNotFoundError) -> str | None:
    """One line naming the [torch] extra when ``exc`` is a missing module of it (a runtime install has none), else None."""
    from mobilenetv2.extras import EXTRAS, TORCH_MODULES

    top = (exc.name or "").split(".")[0]
    if top not in TORCH_MODULES:
        return None
    return f"this needs {top}, which is not installed; it comes with the [torch] extra ({EXTRAS['torch']}): " \
           "pip install 'mobilenetv2[torch]'"


def _error(command: str, message: str, exc: BaseException, verbosity: int) -> int:
    """Exit code 2 after ``message`` on one line; with ``-v`` the traceback and its causes before it."""
    if verbosity >= 1:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"mobilenetv2 {command}: error: {message}", file=sys.stderr)
    return 2
