"""nn modules: parameters, initialisation and state_dict keys as torch.nn; forward calls convkit.functional.

Conv2d, MaxPool2d and AvgPool2d subclass their torch.nn counterparts, so code that walks a model with
`isinstance(m, torch.nn.Conv2d)` (weight init, pruning, fusing) keeps working after convkit.convert().
"""
from __future__ import annotations

import torch
from torch import nn

from . import functional as Fk

__all__ = ["Conv2d", "Corr2d", "MaxPool2d", "AvgPool2d", "Pool2d"]


class Conv2d(nn.Conv2d):
    """torch.nn.Conv2d computed by convkit; also accepts padding (top, bottom, left, right) and "same"
    with any stride (TensorFlow's convention)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, *, backend="auto", algo="auto"):
        Fk._check_backend_name(backend)
        if algo not in Fk.ALGOS:
            raise ValueError(f"algo must be one of {', '.join(map(repr, Fk.ALGOS))}, got {algo!r}")
        # torch.nn.Conv2d rejects "same" with stride > 1 and 4-tuples; it only needs padding for its own
        # forward, which this class replaces, so it is given 0 and convkit's padding is kept here.
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.padding = padding if isinstance(padding, str) else (
            tuple(padding) if isinstance(padding, (tuple, list)) else (padding, padding))
        self.backend = backend
        self.algo = algo

    def forward(self, input):
        return Fk.corr2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                         padding_mode=self.padding_mode, backend=self.backend, algo=self.algo)

    def extra_repr(self):
        return super().extra_repr() + f", backend={self.backend!r}" + (
            f", algo={self.algo!r}" if self.algo != "auto" else "")

    @classmethod
    def from_torch(cls, m: nn.Conv2d, backend="auto") -> "Conv2d":
        """A convkit Conv2d sharing m's parameters (no copy)."""
        new = cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                  m.bias is not None, m.padding_mode, device="meta", backend=backend)
        new.weight, new.bias = m.weight, m.bias
        new.train(m.training)
        return new


class Corr2d(nn.Module):
    """The book's Conv2D layer: a (kh, kw) weight and a scalar bias, on a 2-D input."""

    def __init__(self, kernel_size, bias=True, *, backend="auto"):
        super().__init__()
        Fk._check_backend_name(backend)
        self.weight = nn.Parameter(torch.rand(Fk._pair("kernel_size", kernel_size, minimum=1)))
        self.bias = nn.Parameter(torch.zeros(1)) if bias else None
        self.backend = backend

    def forward(self, x):
        return Fk.corr2d(x, self.weight, self.bias, backend=self.backend)

    def extra_repr(self):
        return f"kernel_size={tuple(self.weight.shape)}, bias={self.bias is not None}, backend={self.backend!r}"


class MaxPool2d(nn.MaxPool2d):
    """torch.nn.MaxPool2d computed by convkit (stride defaults to kernel_size, as torch)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False,
                 *, backend="auto"):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)
        Fk._check_backend_name(backend)
        self.backend = backend

    def forward(self, input):
        return Fk.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                             self.return_indices, backend=self.backend)

    def extra_repr(self):
        return super().extra_repr() + f", backend={self.backend!r}"


class AvgPool2d(nn.AvgPool2d):
    """torch.nn.AvgPool2d computed by convkit (stride defaults to kernel_size, as torch)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None, *, backend="auto"):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        Fk._check_backend_name(backend)
        self.backend = backend

    def forward(self, input):
        return Fk.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override, backend=self.backend)

    def extra_repr(self):
        return super().extra_repr() + f", backend={self.backend!r}"


class Pool2d(nn.Module):
    """d2l-style pooling layer: Pool2d(kernel_size, stride=None, padding=0, mode="max" | "avg", ...).

    stride=None means kernel_size, as torch.nn's pooling layers (functional pool2d defaults to 1).
    """

    def __init__(self, kernel_size, stride=None, padding=0, mode="max", dilation=1, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, return_indices=False, *, backend="auto"):
        super().__init__()
        Fk._check_backend_name(backend)
        self.kernel_size, self.stride, self.padding, self.mode = kernel_size, stride, padding, mode
        self.dilation, self.ceil_mode, self.count_include_pad = dilation, ceil_mode, count_include_pad
        self.divisor_override, self.return_indices, self.backend = divisor_override, return_indices, backend

    def forward(self, input):
        return Fk.pool2d(input, self.kernel_size, self.kernel_size if self.stride is None else self.stride,
                         self.padding, mode=self.mode, dilation=self.dilation, ceil_mode=self.ceil_mode,
                         count_include_pad=self.count_include_pad, divisor_override=self.divisor_override,
                         return_indices=self.return_indices, backend=self.backend)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"mode={self.mode!r}, backend={self.backend!r}")
