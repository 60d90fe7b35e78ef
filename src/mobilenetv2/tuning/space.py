"""The search space: one YAML entry per training option, validated before any trial starts."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError

TYPES = ("float", "int", "categorical")
KEYS = {"type", "low", "high", "log", "step", "choices"}

# Ranges of options that TrainConfig itself does not check (the model and the data loader do, later):
# (lowest, lowest allowed, highest, highest allowed).
LIMITS: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "dropout": (0, True, 1, False),
    "crop_pct": (0, False, 1, True),
}


@dataclass(frozen=True)
class Param:
    """One searched option: a float or int range (optionally log-scaled or stepped), or a list of choices."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial) -> Any:
        """Ask an Optuna trial for this option's value."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list[Any]:
        """Every value of a finite option (choices, int range, stepped float range)."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise UserError(f"grid search needs a finite set of values for {self.name}: give it as "
                            f"{{type: categorical, choices: [...]}} or a float range with a step, or use --sampler random|tpe")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def values_to_check(self) -> list[Any]:
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


class SearchSpace:
    """Named :class:`Param` s; ``suggest(trial)`` gives a trial's overrides of the base training config."""

    def __init__(self, params: Iterable[Param]):
        self.params = {p.name: p for p in params}

    def __len__(self) -> int:
        return len(self.params)

    def __repr__(self) -> str:
        return f"SearchSpace({list(self.params.values())})"

    def suggest(self, trial) -> dict[str, Any]:
        return {name: p.suggest(trial) for name, p in self.params.items()}

    def grid(self) -> dict[str, list[Any]]:
        """The grid GridSampler walks: every value of every option."""
        return {name: p.grid_values() for name, p in self.params.items()}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    @classmethod
    def from_dict(cls, data: Any, allowed: Iterable[str] | None = None, source: str = "search space",
                  check_value: Callable[[str, Any], None] | None = None) -> SearchSpace:
        """Parse and validate ``{name: {type, low, high, log, step, choices}}`` (a list is short for choices).

        ``allowed`` are the valid option names; ``check_value(name, value)`` may raise UserError for a value the
        training config rejects (it is called with both ends of every range and every choice)."""
        if data is None or (isinstance(data, Mapping) and not data):
            raise UserError(f"{source} is empty: give one entry per option, e.g. "
                            "`lr: {type: float, low: 0.001, high: 0.1, log: true}`")
        if not isinstance(data, Mapping):
            raise UserError(f"{source} must map option names to ranges, e.g. "
                            f"`lr: {{type: float, low: 0.001, high: 0.1, log: true}}`; got a {type(data).__name__}")
        allowed = sorted(allowed) if allowed is not None else None
        params = []
        for name, spec in data.items():
            name = str(name)
            if allowed is not None and name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
                hint = f"did you mean {', '.join(close)}?" if close else "see `mobilenetv2 train --help` for the options"
                raise UserError(f"{source}: unknown training option {name!r} ({hint})")
            param = parse_param(name, spec, source)
            for value in param.values_to_check():
                check_limits(param.name, value, source)
                if check_value is not None:
                    try:
                        check_value(name, value)
                    except UserError as exc:
                        raise UserError(f"{source}: {name}={value!r} is not allowed: {exc}") from exc
            params.append(param)
        return cls(params)

    @classmethod
    def from_yaml(cls, path: str | Path, allowed: Iterable[str] | None = None,
                  check_value: Callable[[str, Any], None] | None = None) -> SearchSpace:
        from mobilenetv2.training.config import load_yaml

        data = load_yaml(path, "search space file")
        return cls.from_dict(data, allowed, source=str(path), check_value=check_value)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{what} must be a finite number, got {value!r}")
    return value


def parse_param(name: str, spec: Any, source: str = "search space") -> Param:
    """One entry of the space file, checked for type, keys and a possible range."""
    where = f"{source}: {name}"
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, Mapping):
        raise UserError(f"{where} must be a mapping like {{type: float, low: 0.001, high: 0.1}} or a list of choices, "
                        f"got {spec!r}")
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(sorted(KEYS))}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise UserError(f"{where}: type must be one of {', '.join(TYPES)}, got {kind!r}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: categorical needs a non-empty list `choices: [...]`")
        if any(not (c is None or isinstance(c, (str, int, float, bool))) for c in choices):
            raise UserError(f"{where}: choices must be numbers, strings, booleans or null, got {choices!r}")
        if len({repr(c) for c in choices}) != len(choices):
            raise UserError(f"{where}: choices contain duplicates: {choices!r}")
        if set(spec) - {"type", "choices"}:
            raise UserError(f"{where}: categorical takes only `choices`, not low/high/log/step")
        return Param(name, kind, choices=tuple(choices))
    if "choices" in spec:
        raise UserError(f"{where}: `choices` belongs to type: categorical; a {kind} range takes low, high, log, step")
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{where}: a {kind} range needs both `low` and `high`")
    low, high = _number(spec["low"], f"{where}: low"), _number(spec["high"], f"{where}: high")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise UserError(f"{where}: log must be true or false, got {log!r}")
    if low > high:
        raise UserError(f"{where}: low ({low}) must be <= high ({high})")
    if log and low <= 0:
        raise UserError(f"{where}: a log range needs low > 0, got low={low}")
    if step is not None:
        step = _number(step, f"{where}: step")
        if step <= 0:
            raise UserError(f"{where}: step must be > 0, got {step}")
        if log:
            raise UserError(f"{where}: use either log: true or a step, not both")
    if kind == "int":
        for key, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and value != int(value):
                raise UserError(f"{where}: an int range needs integer {key}, got {value}")
        return Param(name, kind, int(low), int(high), log, int(step) if step is not None else None)
    return Param(name, kind, float(low), float(high), log, float(step) if step is not None else None)


def check_limits(name: str, value: Any, source: str = "search space") -> None:
    """Reject values a training option can never take (a negative learning rate, a resolution below 32, ...)."""
    if name not in LIMITS or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    lo, lo_ok, hi, hi_ok = LIMITS[name]
    too_low = lo is not None and (value < lo or (value == lo and not lo_ok))
    too_high = hi is not None and (value > hi or (value == hi and not hi_ok))
    if too_low or too_high:
        left = "" if lo is None else f"{'>=' if lo_ok else '>'} {lo:g}"
        right = "" if hi is None else f"{'<=' if hi_ok else '<'} {hi:g}"
        allowed = " and ".join(s for s in (left, right) if s)
        raise UserError(f"{source}: {name} must be {allowed}, but the range includes {value!r}")
