"""Model comparison: the Pareto front, candidate parsing, and the peak-memory probe."""

from __future__ import annotations

import json

import pytest

from mobilenetv2.benchmarking.compare import Candidate, pareto_front, parse_candidate, peak_memory_mb
from mobilenetv2.errors import UserError


def test_pareto_front_by_hand():
    # (latency, accuracy): c is slower and worse than a; d ties a on latency but is better; e is the fastest
    costs = [10.0, 20.0, 25.0, 10.0, 5.0, 30.0]
    values = [0.70, 0.80, 0.75, 0.72, 0.60, 0.80]
    assert pareto_front(costs, values) == [False, True, False, True, True, False]
    assert pareto_front([1.0], [0.5]) == [True]
    assert pareto_front([1.0, 1.0], [0.5, 0.5]) == [True, True]  # equal points do not dominate each other


def test_parse_candidates():
    ours = parse_candidate("mobilenet_v2_100@160", 224)
    assert (ours.source, ours.model_name, ours.resolution, ours.name) == ("ours", "mobilenet_v2_100", 160, "mobilenet_v2_100@160")
    outsider = parse_candidate("torchvision:resnet18", 96)
    assert (outsider.source, outsider.model_name, outsider.resolution) == ("torchvision", "resnet18", 96)
    assert parse_candidate("squeezenet1_1", 64).build(num_classes=5)(__import__("torch").zeros(1, 3, 64, 64)).shape == (1, 5)
    with pytest.raises(UserError, match="unknown model 'mobilenet_v22'.*did you mean"):
        parse_candidate("mobilenet_v22", 224)
    with pytest.raises(UserError, match="NAME@RESOLUTION"):
        parse_candidate("mobilenet_v2@big", 224)
    with pytest.raises(UserError, match="resolution must be"):
        parse_candidate("mobilenet_v2@16", 224)


@pytest.mark.slow
def test_memory_probe_in_a_fresh_process():
    mb = peak_memory_mb(Candidate("m", "ours", "mobilenet_v2_035", 64), num_classes=10, threads=1)
    assert mb is not None and 1.0 < mb < 500  # weights (1.7 MB) plus activations, not the interpreter's ~300 MB
    assert json.dumps(mb)
