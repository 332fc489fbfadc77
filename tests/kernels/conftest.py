"""Fixtures of the kernel tests (tests/conftest.py holds the suite's shared ones)."""
import numba
import pytest


@pytest.fixture
def at_threads():
    """at_threads(n, fn): fn() with n Numba threads; the count is restored after."""
    before = numba.get_num_threads()

    def run(n, fn):
        numba.set_num_threads(n)
        try:
            return fn()
        finally:
            numba.set_num_threads(before)

    yield run
    numba.set_num_threads(before)
