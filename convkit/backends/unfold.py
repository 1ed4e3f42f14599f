"""im2col + matrix multiply, vectorised, in chunks under a memory budget.

Algorithm: F.unfold copies every kh x kw input window of an image into a column of a
(C*kh*kw, Ho*Wo) matrix; the convolution is then one (O/g, C/g*kh*kw) @ (C/g*kh*kw, Ho*Wo)
matmul per group (a batched matmul for grouped and depthwise layers).
Memory: that column matrix is kh*kw times the input (9x for 3x3, 49x for the 7x7 ResNet stem:
~1 GiB for a batch of 32 224x224 RGB images). So the batch, and if one image is too big then
bands of output rows, are processed in chunks whose column buffer stays under the budget
(default 256 MiB, env CONVKIT_UNFOLD_BUDGET_MB or set_memory_budget()). Backward recomputes the
columns chunk by chunk instead of keeping them: grad_input is fold(W^T @ dY), grad_weight
sum(dY @ cols^T). Pooling unfolds the planes in chunks too and reduces each column.
When to use: medium shapes on any device/dtype torch supports, no build needed; the fallback of
backend="auto".
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from .. import _shapes

_budget = int(float(os.environ.get("CONVKIT_UNFOLD_BUDGET_MB", "256")) * 2**20)


def set_memory_budget(nbytes: int) -> None:
    """Bound the column buffer of one chunk to `nbytes` (at least one output row of one image)."""
    global _budget
    if int(nbytes) <= 0:
        raise ValueError(f"nbytes must be positive, got {nbytes!r}")
    _budget = int(nbytes)


def get_memory_budget() -> int:
    return _budget


# --------------------------------------------------------------------------- corr2d
class _Geometry:
    """Sizes of one corr2d call, shared by forward and both gradients."""

    def __init__(self, x_shape, w_shape, stride, padding, dilation, groups, itemsize):
        self.n, self.c, self.h, self.w = x_shape
        self.o, self.cg, self.kh, self.kw = w_shape
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        top, bottom, left, right = padding
        self.eff_h = dilation[0] * (self.kh - 1) + 1
        self.ho = _shapes.conv_out_size(self.h, self.kh, top + bottom, stride[0], dilation[0])
        self.wo = _shapes.conv_out_size(self.w, self.kw, left + right, stride[1], dilation[1])
        self.wp = self.w + left + right
        self.k = self.cg * self.kh * self.kw  # rows of one group's column matrix
        self.row_bytes = self.c * self.kh * self.kw * self.wo * itemsize  # columns of one output row

    def chunks(self):
        """(n0, n1, r0, r1): images and output rows whose column buffer fits the budget."""
        rows = max(1, min(self.ho, _budget // max(self.row_bytes, 1)))
        if rows < self.ho:  # one image is too big: bands of output rows, one image at a time
            for i in range(self.n):
                for r0 in range(0, self.ho, rows):
                    yield i, i + 1, r0, min(self.ho, r0 + rows)
        else:
            per = max(1, _budget // max(self.row_bytes * self.ho, 1))
            for n0 in range(0, self.n, per):
                yield n0, min(self.n, n0 + per), 0, self.ho

    def band(self, r0, r1):
        """Padded-input rows [start, start + height) that output rows [r0, r1) read."""
        return r0 * self.stride[0], (r1 - r0 - 1) * self.stride[0] + self.eff_h

    def cols(self, x, n0, n1, r0, r1):
        """Column matrix of images n0:n1, output rows r0:r1, as (nb, groups, k, rows * Wo)."""
        top, _, left, right = self.padding
        start, height = self.band(r0, r1)
        lo, hi = start - top, start + height - top  # the band in unpadded rows
        xs = x[n0:n1, :, max(lo, 0):min(hi, self.h)]
        xs = F.pad(xs, (left, right, max(0, -lo), max(0, hi - self.h)))
        cols = F.unfold(xs, (self.kh, self.kw), dilation=self.dilation, stride=self.stride)
        return cols.view(n1 - n0, self.groups, self.k, -1)


def _forward(x, w, g: _Geometry):
    y = x.new_empty((g.n, g.o, g.ho, g.wo))
    wm = w.reshape(g.groups, g.o // g.groups, g.k)
    for n0, n1, r0, r1 in g.chunks():
        y[n0:n1, :, r0:r1] = torch.matmul(wm, g.cols(x, n0, n1, r0, r1)).view(n1 - n0, g.o, r1 - r0, g.wo)
    return y


def _grad_input(gy, w, g: _Geometry):
    top, bottom, left, _ = g.padding
    gxp = gy.new_zeros((g.n, g.c, g.h + top + bottom, g.wp))
    wt = w.reshape(g.groups, g.o // g.groups, g.k).transpose(1, 2)
    for n0, n1, r0, r1 in g.chunks():
        gyc = gy[n0:n1, :, r0:r1].reshape(n1 - n0, g.groups, g.o // g.groups, -1)
        gcols = torch.matmul(wt, gyc).reshape(n1 - n0, g.c * g.kh * g.kw, -1)
        start, height = g.band(r0, r1)
        gxp[n0:n1, :, start:start + height] += F.fold(
            gcols, (height, g.wp), (g.kh, g.kw), dilation=g.dilation, stride=g.stride)
    return gxp[:, :, top:top + g.h, left:left + g.w]


def _grad_weight(x, gy, g: _Geometry):
    gw = gy.new_zeros((g.groups, g.o // g.groups, g.k))
    for n0, n1, r0, r1 in g.chunks():
        gyc = gy[n0:n1, :, r0:r1].reshape(n1 - n0, g.groups, g.o // g.groups, -1)
        gw = gw + torch.matmul(gyc, g.cols(x, n0, n1, r0, r1).transpose(-1, -2)).sum(0)
    return gw.reshape(g.o, g.cg, g.kh, g.kw)


class _Corr2d(torch.autograd.Function):
    """Saves only x and w; the backward is written in differentiable ops, so double backward works."""

    @staticmethod
    def forward(ctx, x, w, stride, padding, dilation, groups):
        g = _Geometry(x.shape, w.shape, stride, padding, dilation, groups, x.element_size())
        ctx.save_for_backward(x, w)
        ctx.geometry = g
        return _forward(x, w, g)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        g = ctx.geometry
        gx = _grad_input(gy, w, g) if ctx.needs_input_grad[0] else None
        gw = _grad_weight(x, gy, g) if ctx.needs_input_grad[1] else None
        return gx, gw, None, None, None, None


def corr2d(x, w, b, stride, padding, dilation, groups):
    y = _Corr2d.apply(x, w, stride, padding, dilation, groups)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


# --------------------------------------------------------------------------- pool2d
def pool2d(x, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
           return_indices):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho = _shapes.pool_out_size(h, kh, ph, sh, dh, ceil_mode)
    wo = _shapes.pool_out_size(w, kw, pw, sw, dw, ceil_mode)
    extra_h = max(0, (ho - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
    extra_w = max(0, (wo - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
    pads = (pw, pw + extra_w, ph, ph + extra_h)
    planes = x.reshape(n * c, 1, h, w)
    per = max(1, _budget // max(kh * kw * ho * wo * x.element_size(), 1))

    def cols(p0):  # (planes, kh*kw, Ho*Wo) for one chunk; -inf padding never wins a max
        xs = F.pad(planes[p0:p0 + per], pads, value=float("-inf") if mode == "max" else 0.0)
        return F.unfold(xs, kernel, dilation=dilation, stride=stride)

    if mode == "avg":
        if divisor_override is not None:
            div = float(divisor_override)
        else:
            full_h, valid_h = _shapes.avg_pool_divisors(h, kh, ph, sh, ho, count_include_pad)
            full_w, valid_w = _shapes.avg_pool_divisors(w, kw, pw, sw, wo, count_include_pad)
            dh_, dw_ = (full_h, full_w) if count_include_pad else (valid_h, valid_w)
            div = torch.outer(torch.tensor(dh_, dtype=x.dtype), torch.tensor(dw_, dtype=x.dtype))
            div = div.to(x.device).reshape(1, ho * wo)
        # max(.., 1): an empty batch still makes one (empty) chunk, so the output stays in the graph
        out = torch.cat([cols(p0).sum(1) / div for p0 in range(0, max(n * c, 1), per)])
        return out.reshape(n, c, ho, wo)

    # max: find the winning position without autograd, then gather it, so the gradient goes to that
    # one element exactly as torch's max_pool2d (ties: the first in the window; NaN wins).
    with torch.no_grad():
        local = torch.cat([cols(p0).argmax(1) for p0 in range(0, max(n * c, 1), per)])
        i = torch.arange(ho, device=x.device).repeat_interleave(wo)
        j = torch.arange(wo, device=x.device).repeat(ho)
        row = i * sh - ph + (local // kw) * dh
        col = j * sw - pw + (local % kw) * dw
        idx = row * w + col
    out = planes.reshape(n * c, h * w).gather(1, idx).reshape(n, c, ho, wo)
    idx = idx.reshape(n, c, ho, wo)
    return (out, idx) if return_indices else out
