"""convkit._C: C++ (CPU) and CUDA kernels registered as torch ops (convkit::corr2d, ...).

This module is the compiled backend's Python side: loading the extension and, once it is built,
its fake kernels and autograd registrations. If the extension is missing or fails to import,
`import convkit` still works and choosing backend="compiled" raises an error quoting why.
"""
from __future__ import annotations

import torch

BUILD_COMMAND = "MAX_JOBS=2 pip install --no-build-isolation -e .   (or: make build)"

try:
    from .. import _C  # noqa: F401
    IMPORT_ERROR = None
except Exception as e:  # ImportError, or an undefined symbol from a torch version mismatch
    _C = None
    IMPORT_ERROR = e


def available() -> bool:
    return _C is not None


def require() -> None:
    if _C is None:
        raise RuntimeError(f"backend='compiled' is not available: importing convkit._C failed "
                           f"({type(IMPORT_ERROR).__name__}: {IMPORT_ERROR}). Build it with: {BUILD_COMMAND}")


def supports(device: torch.device, dtype: torch.dtype) -> bool:
    return False


def build_info() -> dict:
    if _C is None:
        return {"built": False, "error": f"{type(IMPORT_ERROR).__name__}: {IMPORT_ERROR}"}
    return {"built": True, **_C.build_info()}


def describe() -> str:
    b = build_info()
    return f"convkit._C {'built for ' + b['isa'] + (' + CUDA' if b['cuda'] else '') if b['built'] else 'not built'}"


def corr2d(x, w, b, stride, padding, dilation, groups):
    require()
    raise NotImplementedError


def pool2d(x, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
           return_indices):
    require()
    raise NotImplementedError
