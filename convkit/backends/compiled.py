"""convkit._C: C++ (CPU) and CUDA kernels registered as torch ops, and their fake kernels and autograd.

Ops (schemas in csrc/ops.cpp): convkit::corr2d, convkit::corr2d_backward, convkit::pool2d,
convkit::pool2d_backward. The CPU kernels (csrc/cpu/, the algorithm per shape is listed at the top of
corr2d.cpp) use no im2col-sized buffer; every task owns disjoint output and reductions run in a fixed
order (identical results for any thread count). Memory: the output plus per-task tiles of about 256 KiB (the 1x1
grad_weight kernel's accumulators: up to 2 MiB in all);
float16/bfloat16 inputs are computed in float32 (one converted copy). Eager CPU calls skip
this layer: convkit.functional calls convkit._C.corr2d_eager / pool2d_eager directly.
Autograd is C++ (csrc/autograd.cpp, the Autograd dispatch key): corr2d's backward is the op
corr2d_backward, whose own backward is written in corr2d / corr2d_backward again, so gradients of any
order work, and torch.compile sees real ops. Fake kernels (shapes for torch.compile) are below.
If the extension is missing or fails to import, `import convkit` still works and choosing
backend="compiled" raises an error quoting why.
"""
from __future__ import annotations

import warnings

import torch

from .. import _shapes

BUILD_COMMAND = "MAX_JOBS=2 pip install --no-build-isolation -e .   (or: make build)"

try:
    from .. import _C  # loading the library registers the ops with the dispatcher
    IMPORT_ERROR = None
except Exception as e:  # ImportError, or an undefined symbol from a torch version mismatch
    _C = None
    IMPORT_ERROR = e

# Read once: supports() runs inside torch.compile'd code, where dynamo cannot trace a call into the extension.
try:
    _CUDA_BUILT = _C is not None and bool(_C.build_info().get("cuda"))
except Exception:  # an older or broken build: "compiled" then runs on CPU only, and import convkit still works
    _CUDA_BUILT = False


def available() -> bool:
    return _C is not None


def require() -> None:
    if _C is None:
        raise RuntimeError(f"backend='compiled' is not available: importing convkit._C failed "
                           f"({type(IMPORT_ERROR).__name__}: {IMPORT_ERROR}). Build it with: {BUILD_COMMAND}")


def build_info() -> dict:
    if _C is None:
        return {"built": False, "error": f"{type(IMPORT_ERROR).__name__}: {IMPORT_ERROR}"}
    return {"built": True, **_C.build_info()}


def supports(device: torch.device, dtype: torch.dtype) -> bool:
    if _C is None or not dtype.is_floating_point:
        return False
    return device.type == "cpu" or (device.type == "cuda" and _CUDA_BUILT)


def cache_info() -> dict:
    """The compiled CPU kernels' output cache (csrc/cpu/output_cache.h): large outputs (>= 1 MiB) reuse freed
    blocks, up to CONVKIT_CPU_CACHE_MB (default 1024; 0 disables), instead of faulting in fresh pages every
    call. {"cached_bytes", "limit_bytes", "hits", "misses"}; all zero without the extension."""
    if _C is None:
        return {"cached_bytes": 0, "limit_bytes": 0, "hits": 0, "misses": 0}
    return _C.cache_info()


def empty_cache() -> None:
    """Return the output cache's free blocks to the system (tensors still alive are not affected)."""
    if _C is not None:
        _C.empty_cache()


def fma_peak(iters: int = 20_000_000):
    """GFLOP/s of register-only fp32 FMA chains on every thread (csrc/cpu/peak.cpp); None without the
    extension."""
    if _C is None:
        return None
    gflops, ran = _C.fma_peak(iters)
    if ran != torch.get_num_threads():
        warnings.warn(f"fma_peak: {ran} of {torch.get_num_threads()} threads ran FMA chains; the figure counts all "
                      "of them and overstates the peak", RuntimeWarning, stacklevel=2)
    return gflops


def describe() -> str:
    b = build_info()
    return f"convkit._C {'built for ' + b['isa'] + (' + CUDA' if b['cuda'] else '') if b['built'] else 'not built'}"


# --------------------------------------------------------------------------- the backend entry points
def corr2d(x, w, b, stride, padding, dilation, groups, algo="auto"):
    return torch.ops.convkit.corr2d.default(x, w, b, stride, padding, dilation, groups, algo)


def pool2d(x, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
           return_indices):
    # max writes its indices only where they are returned or autograd will need them
    need_idx = return_indices or (x.requires_grad and torch.is_grad_enabled())
    y, idx = torch.ops.convkit.pool2d.default(x, mode, kernel, stride, padding, dilation, ceil_mode,
                                              count_include_pad, divisor_override, need_idx)
    return (y, idx) if return_indices else y


# --------------------------------------------------------------------------- fake kernels (autograd: csrc/autograd.cpp)
def _pool_memory_format(x):
    """The kernels' output layout: channels_last for a channels_last input (as torch), else contiguous."""
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


def _conv_out_hw(h, w, weight_shape, stride, padding, dilation):
    kh, kw = weight_shape[-2:]
    return (_shapes.conv_out_size(h, kh, padding[0] + padding[1], stride[0], dilation[0]),
            _shapes.conv_out_size(w, kw, padding[2] + padding[3], stride[1], dilation[1]))


def _register() -> None:
    lib = "convkit::"

    @torch.library.register_fake(lib + "corr2d")
    def _corr2d_fake(input, weight, bias, stride, padding, dilation, groups, algo="auto"):
        n, _, h, w = input.shape
        return input.new_empty((n, weight.shape[0], *_conv_out_hw(h, w, weight.shape, stride, padding, dilation)))

    @torch.library.register_fake(lib + "corr2d_backward")
    def _corr2d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask,
                              algo="auto"):
        return (input.new_empty(input.shape) if output_mask[0] else None,
                weight.new_empty(weight.shape) if output_mask[1] else None,
                weight.new_empty((weight.shape[0],)) if output_mask[2] else None)

    @torch.library.register_fake(lib + "pool2d")
    def _pool2d_fake(input, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
                     return_indices=True):
        n, c, h, w = input.shape
        out = (n, c, _shapes.pool_out_size(h, kernel[0], padding[0], stride[0], dilation[0], ceil_mode),
               _shapes.pool_out_size(w, kernel[1], padding[1], stride[1], dilation[1], ceil_mode))
        fmt = _pool_memory_format(input)
        idx = (torch.empty(out, dtype=torch.long, device=input.device, memory_format=fmt)
               if mode == "max" and return_indices else input.new_empty((0,), dtype=torch.long))
        return torch.empty(out, dtype=input.dtype, device=input.device, memory_format=fmt), idx

    @torch.library.register_fake(lib + "pool2d_backward")
    def _pool2d_backward_fake(grad_output, input, indices, *args):
        return torch.empty(input.shape, dtype=input.dtype, device=input.device,
                           memory_format=_pool_memory_format(input))


if _C is not None:
    _register()
