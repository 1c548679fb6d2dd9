import os

import pytest
import torch

# Tests are small; two threads match the CI machine and keep timings comparable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def gen():
    """An explicit, seeded generator: no test depends on global RNG state."""
    return torch.Generator().manual_seed(0)
