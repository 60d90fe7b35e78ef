"""Hyperparameter search with Optuna: a YAML search space over any training option, pruning, resumable storage."""

from mobilenetv2.tuning.objective import make_objective, measure_latency_ms, train_trial
from mobilenetv2.tuning.search import TuneConfig, TuneResult, load_space, tune
from mobilenetv2.tuning.space import Param, SearchSpace
from mobilenetv2.tuning.study import make_pruner, make_sampler, open_storage, open_study, run_trials

__all__ = [
    "Param", "SearchSpace", "TuneConfig", "TuneResult", "load_space", "make_objective", "make_pruner", "make_sampler",
    "measure_latency_ms", "open_storage", "open_study", "run_trials", "train_trial", "tune",
]
