"""Fixtures shared by the test modules; offline settings for everything the tests start.

Helpers that a test module imports live in :mod:`tests.factories` (pytest advises against
importing ``conftest``).
"""

from __future__ import annotations

import pytest

from tests.factories import compose


@pytest.fixture
def compose_cfg():
    return compose


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a whole module (``pytestmark = usefixtures("one_thread")``).

    The models under test are tiny: on a shared 2-core machine OpenMP threads waiting for each
    other cost more than they bring, and no result depends on the thread count.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
