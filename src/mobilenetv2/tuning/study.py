"""Optuna set-up: samplers, pruners, storage, and a trial loop that resumes and shares a study between workers."""

from __future__ import annotations

import itertools
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError
from mobilenetv2.extras import MissingExtraError, available, require
from mobilenetv2.tuning.space import SearchSpace

optuna = require("optuna", "tune")
TrialState = optuna.trial.TrialState

SAMPLERS = ("grid", "random", "tpe", "nsga2")
PRUNERS = ("median", "halving", "none")
# A trial that was interrupted or crashed (FAIL) is redone; these states count as done.
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


class SeededRandomSampler(optuna.samplers.RandomSampler):
    """Random search whose draws depend only on (seed, trial number, option): the same seed gives the same
    parameters, also when a search is resumed or shared by several workers."""

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.seed = seed

    def sample_independent(self, study, trial, param_name, param_distribution):
        key = zlib.crc32(f"{self.seed}/{trial.number}/{param_name}".encode())
        return optuna.samplers.RandomSampler(seed=key).sample_independent(study, trial, param_name, param_distribution)


class ResumableGridSampler(optuna.samplers.GridSampler):
    """GridSampler that redoes cells whose trial failed (interrupted, crashed) instead of counting them as done."""

    def _cells(self, study: optuna.Study) -> tuple[set[int], set[int]]:
        done, running = set(), set()
        for t in study._storage.get_all_trials(study._study_id, deepcopy=False):
            if "grid_id" not in t.system_attrs or not self._same_search_space(t.system_attrs["search_space"]):
                continue
            if t.state in DONE and t.params:
                done.add(t.system_attrs["grid_id"])
            elif t.state == TrialState.RUNNING:
                running.add(t.system_attrs["grid_id"])
        return done, running

    def _get_unvisited_grid_ids(self, study: optuna.Study) -> list[int]:
        done, running = self._cells(study)
        cells = set(range(self._n_min_trials))
        return sorted(cells - done - running) or sorted(cells - done)

    def open_cells(self, study: optuna.Study) -> int:
        """Cells that no trial has finished or is running."""
        done, running = self._cells(study)
        return len(set(range(self._n_min_trials)) - done - running)

    def taken(self, study: optuna.Study, trial: optuna.Trial) -> bool:
        """Whether another trial already ran or runs this trial's cell (two workers that started trials at the
        same moment near the end of the grid)."""
        cell = study._storage.get_trial_system_attrs(trial._trial_id).get("grid_id")
        others = study._storage.get_all_trials(study._study_id, deepcopy=False, states=(*DONE, TrialState.RUNNING))
        return any(t.number != trial.number and t.params and t.system_attrs.get("grid_id") == cell for t in others)


def make_sampler(name: str, space: SearchSpace, seed: int = 0) -> optuna.samplers.BaseSampler:
    """``grid`` (every cell once), ``random`` (seeded per trial), ``tpe`` (Bayesian, seeded) or ``nsga2`` (the
    genetic multi-objective sampler, seeded)."""
    if name == "grid":
        sampler = ResumableGridSampler(space.grid(), seed=seed)
        sampler.reseed_rng()  # the cell order stays seeded; retries of failed cells differ between workers
        return sampler
    if name == "random":
        return SeededRandomSampler(seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, len(space) * 2)))
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise UserError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """``median``: stop a trial whose epoch score is worse than the median of earlier trials at that epoch;
    ``halving``: asynchronous successive halving; ``none``."""
    if name == "median":
        # Not after the first epoch: during the lr warm-up every trial is near chance, so ranking it is noise.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"pruner must be one of {', '.join(PRUNERS)}, got {name!r}")


def storage_url(storage: str | None, out: str | Path) -> str:
    """``None`` -> ``sqlite:///<out>/study.db``; a plain file path -> SQLite; anything else is an Optuna URL."""
    if storage is None:
        return f"sqlite:///{Path(out).resolve() / 'study.db'}"
    if "://" not in storage:
        return f"sqlite:///{Path(storage).resolve()}"
    return storage


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a database URL at all: nothing to hide
        return url


POSTGRES = ("postgresql://", "postgres://")


def driver_url(url: str) -> str:
    """A plain ``postgresql://`` URL names psycopg (3) explicitly: SQLAlchemy before 2.1 would pick psycopg2."""
    scheme = next((s for s in POSTGRES if url.startswith(s)), None)
    if scheme is None:
        return url
    if not available("psycopg") and available("psycopg2"):
        return "postgresql+psycopg2://" + url[len(scheme):]
    try:
        require("psycopg", "tune")
    except MissingExtraError as exc:
        raise MissingExtraError(f"cannot open storage {display_url(url)!r}: {exc}") from exc
    return "postgresql+psycopg://" + url[len(scheme):]


def engine_options(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options for the storage's database."""
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        if not db.parent.is_dir():
            raise UserError(f"cannot open storage {display_url(url)!r}: folder {str(db.parent)!r} does not exist")
        return {"connect_args": {"timeout": 60}}  # several workers may write at once
    if url.startswith("postgresql"):
        # A host that drops packets fails in seconds, not minutes; a connection that idled through a long trial
        # (closed by a firewall or the server) is replaced instead of failing the trial.
        timeout = {} if "connect_timeout=" in url else {"connect_args": {"connect_timeout": 10}}
        return {**timeout, "pool_pre_ping": True}
    return {}


def failure(exc: BaseException) -> str:
    """The database's own words (not SQLAlchemy's wrapper with its SQL and links), on one line."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    if not lines:
        return type(orig).__name__
    return " ".join([*(line if line[-1] in ".:;?!" else line + "." for line in lines[:-1]), lines[-1]])


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect now, so that a missing driver or an unreachable database is one clear line before any trial starts."""
    connect = driver_url(url)
    engine_kwargs = engine_options(connect)
    for attempt in itertools.count():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Heartbeats let a study notice a worker that died: its trial becomes FAIL and is redone.
                return optuna.storages.RDBStorage(connect, engine_kwargs=engine_kwargs, heartbeat_interval=30,
                                                  grace_period=120)
        except ImportError as exc:
            raise UserError(f"cannot open storage {display_url(url)!r}: no driver for {url.split('://')[0]!r} is "
                            "installed (pip install 'mobilenetv2[tune]' brings the one for postgresql:// URLs)") from exc
        except Exception as exc:  # SQLAlchemy raises many kinds; all mean the same to the user
            racing = type(exc).__name__ == "IntegrityError" or "already exists" in str(exc)
            if racing and attempt < 5:  # workers started together raced to create the tables
                time.sleep(0.2 * (attempt + 1))
                continue
            reason = failure(exc).replace(connect, display_url(url)).replace(url, display_url(url))
            # not chained: the driver's error may quote the URL with its password, which the message hides
            raise UserError(f"cannot open storage {display_url(url)!r}: {reason}") from None


def open_study(name: str, storage: optuna.storages.BaseStorage | str, sampler: optuna.samplers.BaseSampler,
               pruner: optuna.pruners.BasePruner, direction: str | list[str]) -> optuna.Study:
    """Create the study, or load it to resume or to join other workers (``direction``: a list for several
    objectives)."""
    directions = [direction] if isinstance(direction, str) else list(direction)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                directions=directions, load_if_exists=True)
    stored = [d.name.lower() for d in study.directions]
    if stored != directions:
        raise UserError(f"study {name!r} in this storage is set to {' '.join(stored)}, not {' '.join(directions)}: "
                        "use the same --objective/--objectives, or another --study name")
    return study


def count_trials(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    """Trials in ``states`` that got parameters (a trial skipped as a duplicate grid cell has none)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if t.params)


def run_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int,
               timeout: float | None = None, callbacks: list | None = None) -> int:
    """Run trials until the study has ``n_trials`` finished ones (counting those of earlier runs and of other
    workers), the grid is covered, or ``timeout`` seconds have passed; return how many this call ran."""
    start, ran = time.monotonic(), 0
    grid = study.sampler if isinstance(study.sampler, ResumableGridSampler) else None

    def run_once(trial: optuna.Trial) -> float:
        if grid is not None and grid.taken(study, trial):
            raise optuna.TrialPruned("this grid cell was taken by another worker")
        return objective(trial)

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if timeout is not None and time.monotonic() - start >= timeout:
            break
        if count_trials(study, DONE) + len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) >= n_trials:
            break
        if grid is not None and grid.open_cells(study) <= 0:
            break
        study.optimize(run_once, n_trials=1, callbacks=callbacks, gc_after_trial=True)
        ran += 1
    return ran
