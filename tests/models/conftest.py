"""One intra-op thread for the models tests: their tensors are tiny, and on a shared 2-core
machine OpenMP threads fighting for the cores made steps 10-30x slower (measured)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
