import pytest
import torch

from convkit.backends import get_backend

_compiled = get_backend("compiled")
COMPILED_SKIP = pytest.mark.skipif(
    not _compiled.supports(torch.device("cpu"), torch.float32),
    reason=f"the compiled backend does not run on CPU here ({_compiled.describe()}; "
           f"{_compiled.build_info().get('error', 'no CPU kernels registered')})")

# Every backend convkit implements itself; "torch" is the oracle.
BACKENDS = ["naive", "unfold", pytest.param("compiled", marks=COMPILED_SKIP)]


def _blas_preference(mode):
    from convkit import _C
    _C.set_blas_preference(mode)
    try:
        yield
    finally:
        _C.set_blas_preference("measure")


# "auto" takes its BLAS-based paths only where BLAS runs near the FMA peak (measured once per process, see
# csrc/cpu/peak.cpp): tests of those paths, and of the rules that replace them, fix the answer.
@pytest.fixture
def blas_prefer():
    yield from _blas_preference("prefer")


@pytest.fixture
def blas_avoid():
    yield from _blas_preference("avoid")
