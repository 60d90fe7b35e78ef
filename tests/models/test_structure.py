"""Every registered model keeps its stages, feature points, state_dict keys/shapes and parameter count.

``structure.json`` beside this file pins them; after a deliberate change of architecture, rewrite it with
``python tests/models/test_structure.py`` and review the diff.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mobilenetv2.models import create_model, list_models
from mobilenetv2.models.base import stage_dict

GOLDEN = Path(__file__).with_name("structure.json")
FEATURE_KEYS = ("index", "stride", "channels")
# Knobs that change the layout, beyond the registered names.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "mobilenet_v2:se_expansion4": ("mobilenet_v2", {"se_ratio": 0.25, "expansion": 4}),
    "mobilenet_v2:width2.0": ("mobilenet_v2", {"width_mult": 2.0}),
    "mobilenet_v3_small:width0.5": ("mobilenet_v3_small", {"width_mult": 0.5}),
    "deeplabv3_mobilenet_v2:os8_aspp_aux": ("deeplabv3_mobilenet_v2", {"output_stride": 8, "head": "aspp", "aux_loss": True}),
}


def all_models() -> dict[str, tuple[str, dict[str, Any]]]:
    return {**{name: (name, {}) for name in list_models()}, **VARIANTS}


def structure(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What must not change: stages, feature points, state_dict layout (as a digest) and parameter count."""
    model = create_model(name, **kwargs)
    layout = "\n".join(f"{k} {tuple(v.shape)}" for k, v in model.state_dict().items())
    return {
        "stages": [stage_dict(s) for s in model.stages],
        "feature_info": [{k: f[k] for k in FEATURE_KEYS} for f in model.feature_info],
        "state_dict_entries": len(model.state_dict()),
        "state_dict_sha256": hashlib.sha256(layout.encode()).hexdigest(),
        "params": sum(p.numel() for p in model.parameters()),
        "num_features": model.num_features,
    }


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def test_every_model_is_pinned(golden):
    assert set(golden) == set(all_models())


@pytest.mark.parametrize("key", sorted(all_models()))
def test_structure_unchanged(key, golden):
    name, kwargs = all_models()[key]
    assert structure(name, kwargs) == golden[key]


def _dump(pinned: dict[str, dict[str, Any]]) -> str:
    """JSON with one line per stage and feature point, so a diff shows what moved."""

    def value(v: Any) -> str:
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return "[\n" + ",\n".join(f"   {json.dumps(x)}" for x in v) + "\n  ]"
        return json.dumps(v)

    models = [
        f" {json.dumps(name)}: {{\n" + ",\n".join(f"  {json.dumps(k)}: {value(v)}" for k, v in fields.items()) + "\n }"
        for name, fields in pinned.items()
    ]
    return "{\n" + ",\n".join(models) + "\n}\n"


if __name__ == "__main__":
    GOLDEN.write_text(_dump({k: structure(*v) for k, v in sorted(all_models().items())}))
