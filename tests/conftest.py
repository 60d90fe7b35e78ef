"""Shared fixtures: the real data folder beside the checkout, and small thread counts for a 2-core machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

THREADS = 2
torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _isolate_torch_globals():
    """Every test starts with the same thread count and determinism flag, whatever the previous one set:
    results that must match bit for bit (resume, DDP) depend on the reduction order, hence on threads."""
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(False)
    yield
    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the checkout; tests needing it skip when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (only CI and developer machines have ../shared/data)")
    return SHARED_DATA
