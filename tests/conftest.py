"""Shared test fixtures: where the golden vectors live, and deterministic torch settings."""
import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(os.environ.get("STYLEGAN_UNLEARN_GOLDEN", REPO_ROOT.parent / "shared" / "golden"))

# One thread: tiny test networks run 20-70x faster than with 2 threads on a loaded 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.fail(f"golden vectors not found at {GOLDEN_DIR}; set STYLEGAN_UNLEARN_GOLDEN")
    return GOLDEN_DIR


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
