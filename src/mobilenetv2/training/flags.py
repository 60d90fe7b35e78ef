"""Training options as command-line flags and back: one way, shared by `train`, `tune` and its reports."""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields
from typing import Any

from mobilenetv2.training.config import TrainConfig, field_types


def add_training_flags(p: argparse.ArgumentParser | Any, *, skip: tuple[str, ...] = (), show_help: bool = True) -> None:
    """One ``--field-name`` flag per ``TrainConfig`` field (``--x/--no-x`` for booleans); unset flags stay absent."""
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        base, _ = field_types(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        own = "(default" in f.metadata["help"]  # the help names a default chosen at run time
        help_text = (f.metadata["help"] if own else f"{f.metadata['help']} (default: {f.default})") if show_help \
            else argparse.SUPPRESS
        if base is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            p.add_argument(flag, type=base, default=argparse.SUPPRESS, metavar=f.name.upper(), help=help_text)


def given_training_flags(args: argparse.Namespace, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The training options the user set on the command line, by field name."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in skip and hasattr(args, f.name)}


def training_flags(cfg: TrainConfig | dict[str, Any]) -> list[str]:
    """The flags that reproduce ``cfg`` on the command line (the inverse of ``add_training_flags``)."""
    values = cfg.to_dict() if isinstance(cfg, TrainConfig) else cfg
    flags = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif value is not None:
            flags += [flag, str(value)]
    return flags
