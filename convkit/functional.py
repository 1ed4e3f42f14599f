"""The one dispatch point: argument normalisation, every user-facing error, backend choice.

Backends receive only normalised, validated arguments:
  corr2d(input4d, weight4d, bias_or_None, stride(2), padding(4: top, bottom, left, right), dilation(2), groups)
  pool2d(input4d, mode, kernel(2), stride(2), padding(2), dilation(2), ceil_mode, count_include_pad,
         divisor_override, return_indices)
and never validate user input themselves.

Eager fast path: a call on plain CPU tensors outside torch.compile and torch function modes, with backend
"auto" or "compiled", goes straight to convkit._C's eager entry points (corr2d_eager / pool2d_eager). Without
autograd they call the CPU kernels directly; with autograd (or a TorchDispatchMode) they call the op through
the C++ dispatcher, which records the graph, skipping torch.ops' Python layer either way (csrc/module.cpp).
They take the raw arguments and return NotImplemented for anything but plain tensors and exact ints /
tuples (strings, bools, int tensors, errors from the kernel's checks), and the checked path below runs
and raises the user-facing error.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from . import _shapes
from .backends import BACKENDS, get_backend

__all__ = [
    "corr2d", "conv2d", "pool2d", "max_pool2d", "avg_pool2d", "available_backends",
    "resolve_backend",
]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_POOL_MODES = ("max", "avg")
_BACKEND_NAMES = ("auto",) + BACKENDS
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FAST_BACKENDS = ("auto", "compiled")
# corr2d algorithms of the compiled backend (csrc/common.h parse_algo), per device; "auto" chooses per shape.
ALGOS = ("auto", "direct", "implicit_gemm", "im2col", "winograd")
_DEVICE_ALGOS = {"cpu": ALGOS, "cuda": ("auto", "direct", "implicit_gemm")}


def _fast_module():
    """convkit._C when it has the eager entry points, else None."""
    from .backends import compiled
    c = compiled._C
    return c if c is not None and hasattr(c, "pool2d_eager") else None


_CK = _fast_module()
_is_compiling = torch.compiler.is_compiling
_function_mode = torch._C._is_torch_function_mode_enabled


def _fast(backend) -> bool:
    """Whether an eager call may try convkit._C's eager entry points (they check the tensors)."""
    return _CK is not None and backend in _FAST_BACKENDS and not _is_compiling() and not _function_mode()


# --------------------------------------------------------------------------- argument helpers
def _is_int(v) -> bool:
    return type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def _pair(name: str, value, *, minimum: int) -> tuple[int, int]:
    """int or pair of ints, each >= minimum."""
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        pair = value  # the common case, checked without the abc machinery
    elif _is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list, torch.Size)) and len(value) == 2 and all(_is_int(v) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return pair


def _check_tensor(name: str, t) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.is_complex():
        raise TypeError(f"{name} must be a real (float, int or bool) tensor, got complex dtype {t.dtype}")


def _as_float(t: torch.Tensor, like: torch.dtype | None = None) -> torch.Tensor:
    """Integer and bool tensors become the default float dtype (or `like`), as in the book's examples."""
    if t.dtype in _FLOAT_DTYPES:
        return t
    if t.is_floating_point():  # e.g. float8: compute in the default dtype
        return t.to(torch.get_default_dtype())
    return t.to(like if like is not None else torch.get_default_dtype())


def _check_backend_name(backend) -> None:
    if backend not in _BACKEND_NAMES:
        raise ValueError(f"backend must be one of {', '.join(map(repr, _BACKEND_NAMES))}, got {backend!r}")


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """"auto" -> "compiled" when it is built and supports this device and dtype, else "unfold"."""
    _check_backend_name(backend)
    if backend == "auto":
        compiled = get_backend("compiled")
        return "compiled" if compiled.supports(device, dtype) else "unfold"
    if backend == "compiled":
        compiled = get_backend("compiled")
        compiled.require()  # raises with the import error and the build command
        if not compiled.supports(device, dtype):
            raise ValueError(
                f"backend='compiled' does not support device {device.type!r} with dtype {dtype} in this build "
                f"({compiled.describe()}); use backend='unfold' or 'torch'")
    return backend


def available_backends(device="cpu") -> list[str]:
    """The backends that run on `device` here (naive, unfold and torch always; compiled when built for it)."""
    device = torch.device(device)
    names = ["naive", "unfold", "torch"]
    if get_backend("compiled").supports(device, torch.float32):
        names.insert(2, "compiled")
    return names


# --------------------------------------------------------------------------- corr2d
def _conv_padding(padding, hw, khw, stride, dilation) -> tuple[int, int, int, int]:
    """int | pair | (top, bottom, left, right) | "valid" | "same" -> (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            return (_shapes.same_padding(hw[0], khw[0], stride[0], dilation[0])
                    + _shapes.same_padding(hw[1], khw[1], stride[1], dilation[1]))
        raise ValueError(f"padding must be an int, a pair, a 4-tuple (top, bottom, left, right), "
                         f"'valid' or 'same', got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 4 and all(_is_int(v) for v in padding):
        pads = tuple(int(v) for v in padding)
        if min(pads) < 0:
            raise ValueError(f"padding must be non-negative, got {padding!r}")
        return pads
    try:
        ph, pw = _pair("padding", padding, minimum=0)
    except TypeError:
        raise TypeError(f"padding must be an int, a pair, a 4-tuple (top, bottom, left, right), "
                        f"'valid' or 'same', got {padding!r}") from None
    return (ph, ph, pw, pw)


def _conv_ranks(input: torch.Tensor, weight: torch.Tensor):
    """Apply the rank rules; return (input4d, weight4d, how to shape the 4-d output back)."""
    xi, wi = input.dim(), weight.dim()
    if xi == 2 and wi == 2:        # d2l corr2d: (H, W) * (kh, kw) -> (Ho, Wo)
        return input[None, None], weight[None, None], lambda y: y[0, 0]
    if xi == 3 and wi == 3:        # d2l corr2d_multi_in: (C, H, W) * (C, kh, kw) -> (Ho, Wo)
        return input[None], weight[None], lambda y: y[0, 0]
    if xi == 3 and wi == 4:        # d2l corr2d_multi_in_out / torch unbatched: -> (O, Ho, Wo)
        return input[None], weight, lambda y: y[0]
    if xi == 4 and wi == 4:
        return input, weight, None
    raise ValueError(
        f"input and weight ranks do not match a supported form: got input of shape {tuple(input.shape)} "
        f"and weight of shape {tuple(weight.shape)}; expected input (H, W) with weight (kh, kw), "
        f"input (C, H, W) with weight (C, kh, kw) or (O, C/groups, kh, kw), "
        f"or input (N, C, H, W) with weight (O, C/groups, kh, kw)")


def _bias(bias, out_channels: int, weight: torch.Tensor):
    if bias is None:
        return None
    if type(bias) is torch.Tensor and bias.shape == (out_channels,) and bias.dtype == weight.dtype \
            and bias.device == weight.device:
        return bias
    if isinstance(bias, numbers.Number) and not isinstance(bias, (bool, complex)):
        return torch.full((out_channels,), float(bias), dtype=weight.dtype, device=weight.device)
    _check_tensor("bias", bias)
    if bias.device != weight.device:
        raise ValueError(f"bias must be on the same device as weight ({weight.device}), got {bias.device}")
    bias = _as_float(bias, weight.dtype)
    if bias.dtype != weight.dtype:
        raise ValueError(f"bias must have the same dtype as weight ({weight.dtype}), got {bias.dtype}")
    if bias.numel() == 1 and bias.dim() <= 1:      # the d2l Conv2D scalar bias, shared by every channel
        return bias.reshape(1).expand(out_channels)
    if bias.shape != (out_channels,):
        raise ValueError(f"bias must be None, a scalar, a 1-element tensor or of shape ({out_channels},) "
                         f"(one per output channel), got shape {tuple(bias.shape)}")
    return bias


def corr2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           padding_mode="zeros", backend="auto", algo="auto"):
    """2-D cross-correlation (deep learning's "convolution"), d2l's corr2d generalised to torch's conv2d.

    input (H, W), (C, H, W) or (N, C, H, W); weight (kh, kw), (C, kh, kw) or (O, C/groups, kh, kw).
    padding: int, pair, (top, bottom, left, right), "valid" or "same" (any stride: output ceil(H/stride)).
    padding_mode: "zeros", "reflect", "replicate" or "circular".
    backend: "auto", "naive", "unfold", "compiled" or "torch".
    algo: the compiled backend's algorithm: "auto" (chosen per shape, see convkit.explain), or forced:
      "direct" (direct loops, column stride 1), "implicit_gemm" (packed column tiles, no im2col buffer),
      "im2col" (the textbook column matrix + BLAS; CPU only) or "winograd" (CPU only; F(4x4, 3x3): 3x3,
      stride 1, any dilation; or, forward only with the backward as "auto", stride 2 with a kernel 5 to 8
      wide, dilation 1, groups 1: direct along rows and F(4, 4) along columns over the stride phases).
    """
    if padding_mode == "zeros" and _fast(backend):
        y = _CK.corr2d_eager(input, weight, bias, stride, padding, dilation, groups, algo)
        if y is not NotImplemented:
            return y
    _check_tensor("input", input)
    _check_tensor("weight", weight)
    if input.device != weight.device:
        raise ValueError(f"input and weight must be on the same device, got input on {input.device} "
                         f"and weight on {weight.device}")
    # ints/bools follow the other tensor's float dtype (or the default): corr2d(int X, int K) gives floats.
    input = _as_float(input, weight.dtype if weight.is_floating_point() else None)
    weight = _as_float(weight, input.dtype)
    if input.dtype != weight.dtype:
        raise ValueError(f"input and weight must have the same dtype, got input {input.dtype} "
                         f"and weight {weight.dtype}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(map(repr, _PADDING_MODES))}, "
                         f"got {padding_mode!r}")
    name = resolve_backend(backend, input.device, input.dtype)

    x, w, unshape = _conv_ranks(input, weight)
    if groups != 1 and weight.dim() != 4:
        raise ValueError(f"groups={groups} needs a 4-d weight (O, C/groups, kh, kw), "
                         f"got weight of shape {tuple(weight.shape)}")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * groups:
        raise ValueError(f"input has {c} channels but weight expects {cg} * groups={groups} = {cg * groups} "
                         f"(input shape {tuple(input.shape)}, weight shape {tuple(weight.shape)})")
    if o % groups:
        raise ValueError(f"weight's out_channels ({o}) must be divisible by groups ({groups})")
    if kh < 1 or kw < 1:
        raise ValueError(f"weight's kernel size must be positive, got {(kh, kw)}")
    stride = _pair("stride", stride, minimum=1)
    dilation = _pair("dilation", dilation, minimum=1)
    pads = _conv_padding(padding, (h, wd), (kh, kw), stride, dilation)
    b = _bias(bias, o, w)

    if padding_mode != "zeros" and any(pads):
        _check_pad_mode_fits(padding_mode, pads, (h, wd))
        x = F.pad(x, (pads[2], pads[3], pads[0], pads[1]), mode=padding_mode)
        pads = (0, 0, 0, 0)
    eff_h, eff_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    hp, wp = x.shape[2] + pads[0] + pads[1], x.shape[3] + pads[2] + pads[3]
    if eff_h > hp or eff_w > wp:
        raise ValueError(f"kernel size {(kh, kw)} with dilation {dilation} (effective {(eff_h, eff_w)}) "
                         f"is larger than the padded input {(hp, wp)}")

    _check_algo(algo, name, x.device, (kh, kw), stride, dilation, groups)
    if algo != "auto":
        y = get_backend(name).corr2d(x, w, b, stride, pads, dilation, groups, algo=algo)
    else:
        y = get_backend(name).corr2d(x, w, b, stride, pads, dilation, groups)
    return unshape(y) if unshape is not None else y


def _check_algo(algo, backend, device, khw, stride, dilation, groups) -> None:
    if algo == "auto":
        return
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {', '.join(map(repr, ALGOS))}, got {algo!r}")
    if backend != "compiled":
        raise ValueError(f"algo={algo!r} chooses an algorithm of the compiled backend, but the backend here is "
                         f"{backend!r}; use backend='compiled' (or 'auto' with convkit._C built), or algo='auto'")
    allowed = _DEVICE_ALGOS.get(device.type, ("auto",))
    if algo not in allowed:
        raise ValueError(f"algo={algo!r} is not implemented on {device.type}; there: "
                         f"{', '.join(map(repr, allowed))}")
    if algo == "direct" and device.type == "cpu" and stride[1] != 1:
        raise ValueError(f"algo='direct' (the CPU direct rows kernel) needs a column stride of 1, got stride "
                         f"{stride}; use algo='implicit_gemm' or 'auto'")
    if algo == "winograd" and not _winograd_applies(khw, stride, dilation, groups):
        raise ValueError(f"algo='winograd' needs a 3x3 kernel with stride 1 (F(4x4, 3x3)), or stride 2 with a "
                         f"kernel 5 to 8 wide, dilation 1 and groups 1 (F(4, 4) along columns over the stride "
                         f"phases), got kernel {tuple(khw)}, stride {tuple(stride)}, dilation {tuple(dilation)}, "
                         f"groups {groups}")


def _winograd_applies(khw, stride, dilation, groups) -> bool:
    """The shapes algo='winograd' has a CPU path for (csrc/cpu: winograd_applies, winograd_s2_applies)."""
    if tuple(khw) == (3, 3) and tuple(stride) == (1, 1):
        return True
    return tuple(stride) == (2, 2) and tuple(dilation) == (1, 1) and groups == 1 and 5 <= khw[1] <= 8


conv2d = corr2d


def _check_pad_mode_fits(mode, pads, hw) -> None:
    for p, n, side in zip(pads, (hw[0], hw[0], hw[1], hw[1]), ("top", "bottom", "left", "right")):
        if mode == "reflect" and p >= n:
            raise ValueError(f"padding_mode='reflect' needs padding < input size, got {side} padding {p} "
                             f"for size {n}")
        if mode == "circular" and p > n:
            raise ValueError(f"padding_mode='circular' needs padding <= input size, got {side} padding {p} "
                             f"for size {n}")


# --------------------------------------------------------------------------- pool2d
def pool2d(input, kernel_size, stride=1, padding=0, *, mode="max", dilation=1, ceil_mode=False,
           count_include_pad=True, divisor_override=None, return_indices=False, backend="auto"):
    """2-D max or average pooling; d2l's pool2d(X, pool_size, mode) with torch's options.

    stride defaults to 1, as in the book (torch's max_pool2d/avg_pool2d default it to kernel_size).
    input (H, W), (C, H, W) or (N, C, H, W); every channel is pooled separately.
    return_indices (max only) gives torch-compatible flat indices h * W + w into each input plane.
    """
    if not return_indices and _fast(backend):
        y = _CK.pool2d_eager(input, mode, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
                             divisor_override)
        if y is not NotImplemented:
            return y
    _check_tensor("input", input)
    if mode not in _POOL_MODES:
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    if input.dim() not in (2, 3, 4):
        raise ValueError(f"input must be (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(input.shape)}")
    input = _as_float(input)
    kernel = _pair("kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else _pair("stride", stride, minimum=1)
    pad = _pair("padding", padding, minimum=0)
    dilation = _pair("dilation", dilation, minimum=1)
    if mode == "avg":
        if dilation != (1, 1):
            raise ValueError(f"dilation is only supported for mode='max', got dilation={dilation} for mode='avg'")
        if return_indices:
            raise ValueError("return_indices is only supported for mode='max'")
    if divisor_override is not None:
        if mode != "avg":
            raise ValueError("divisor_override is only supported for mode='avg'")
        if not _is_int(divisor_override) or divisor_override == 0:
            raise ValueError(f"divisor_override must be a non-zero int or None, got {divisor_override!r}")
    name = resolve_backend(backend, input.device, input.dtype)

    eff = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    for p, k, e in zip(pad, kernel, eff):
        limit = e // 2 if mode == "max" else k // 2
        if p > limit:
            raise ValueError(f"padding must be at most half of the kernel size "
                             f"(padding <= {limit} for kernel_size={kernel}"
                             f"{f', dilation={dilation}' if mode == 'max' else ''}), got padding={pad}")
    h, w = input.shape[-2:]
    out = tuple(_shapes.pool_out_size(n, k, p, s, d, bool(ceil_mode))
                for n, k, p, s, d in zip((h, w), kernel, pad, stride, dilation))
    if min(out) < 1:
        raise ValueError(f"kernel_size {kernel} with padding {pad} and dilation {dilation} is larger than "
                         f"the padded input {(h + 2 * pad[0], w + 2 * pad[1])}: output size would be {out}")

    rank = input.dim()
    x = input.reshape((1,) * (4 - rank) + tuple(input.shape)) if rank < 4 else input
    res = get_backend(name).pool2d(x, mode, kernel, stride, pad, dilation, bool(ceil_mode),
                                   bool(count_include_pad), divisor_override, bool(return_indices))
    if rank < 4:
        lead = tuple(input.shape[:-2])
        if return_indices:
            return res[0].reshape(lead + out), res[1].reshape(lead + out)
        return res.reshape(lead + out)
    return res


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend="auto"):
    """torch.nn.functional.max_pool2d's signature and defaults (stride defaults to kernel_size)."""
    if stride is None or stride == []:
        stride = kernel_size
    if not return_indices and _fast(backend):
        y = _CK.pool2d_eager(input, "max", kernel_size, stride, padding, dilation, ceil_mode, True, None)
        if y is not NotImplemented:
            return y
    return pool2d(input, kernel_size, stride, padding, mode="max", dilation=dilation, ceil_mode=ceil_mode, return_indices=return_indices,
                  backend=backend)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, backend="auto"):
    """torch.nn.functional.avg_pool2d's signature and defaults (stride defaults to kernel_size)."""
    if stride is None or stride == []:
        stride = kernel_size
    if _fast(backend):
        y = _CK.pool2d_eager(input, "avg", kernel_size, stride, padding, 1, ceil_mode, count_include_pad,
                             divisor_override)
        if y is not NotImplemented:
            return y
    return pool2d(input, kernel_size, stride, padding, mode="avg", ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                  divisor_override=divisor_override, backend=backend)
