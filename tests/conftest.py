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
