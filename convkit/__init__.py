"""convkit: 2-D cross-correlation (convolution) and pooling for PyTorch with interchangeable backends."""
from . import nn
from .backends import compiled as _compiled  # noqa: F401  (loads convkit._C: registers torch.ops.convkit)
from .backends.unfold import get_memory_budget as get_unfold_memory_budget
from .backends.unfold import set_memory_budget as set_unfold_memory_budget
from ._info import info
from .backends.compiled import cache_info, empty_cache
from .convert import convert
from .explain import explain
from .functional import available_backends, avg_pool2d, conv2d, corr2d, max_pool2d, pool2d
from .backends import BACKENDS as _BACKENDS, get_backend as _get_backend

# Every backend module is looked up once here: the first get_backend of a name imports it with importlib,
# which torch.compile cannot trace (a first convkit call inside torch.compile(fullgraph=True) failed).
for _name in _BACKENDS:
    _get_backend(_name)
del _name

__version__ = "0.1.0"

__all__ = ["corr2d", "conv2d", "pool2d", "max_pool2d", "avg_pool2d", "available_backends", "convert", "explain", "nn", "info",
           "cache_info", "empty_cache",
           "set_unfold_memory_budget", "get_unfold_memory_budget", "__version__"]
