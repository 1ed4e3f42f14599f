"""Interchangeable implementations of corr2d and pool2d with identical signatures.

naive     d2l's loops over output positions (the readable oracle; tiny inputs, teaching)
unfold    im2col (F.unfold) + batched matmul, in chunks under a memory budget
compiled  convkit._C: C++/CUDA kernels registered as torch ops
torch     torch.nn.functional (the reference and benchmark baseline)
"""
from __future__ import annotations

import importlib

BACKENDS = ("naive", "unfold", "compiled", "torch")
_MODULES = {"naive": "naive", "unfold": "unfold", "compiled": "compiled", "torch": "torch_ref"}
_cache: dict = {}


def get_backend(name: str):
    mod = _cache.get(name)
    if mod is None:
        mod = _cache[name] = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return mod
