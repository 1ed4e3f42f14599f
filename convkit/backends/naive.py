"""The d2l loops, generalised: the readable oracle, for tiny inputs and teaching.

Algorithm: loop in Python over every output position (i, j), take the input window under the kernel
and reduce it, vectorised over batch and channels only (d2l's corr2d with `(X[i:i+h, j:j+w] * K).sum()`).
Cost: Ho * Wo small tensor ops, so ~10 us per output pixel whatever the channel count; use it on
inputs of a few dozen pixels. Memory: one padded copy of the input. Gradients come from autograd.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _shapes


def _window(x, i, j, kernel, stride, dilation):
    """The (kh, kw) window of output position (i, j) in an already padded tensor, as a view."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    return x[..., i * sh: i * sh + dh * (kh - 1) + 1: dh, j * sw: j * sw + dw * (kw - 1) + 1: dw]


def corr2d(x, w, b, stride, padding, dilation, groups):
    top, bottom, left, right = padding
    x = F.pad(x, (left, right, top, bottom))
    n, c, hp, wp = x.shape
    o, cg, kh, kw = w.shape
    ho = _shapes.conv_out_size(hp, kh, 0, stride[0], dilation[0])
    wo = _shapes.conv_out_size(wp, kw, 0, stride[1], dilation[1])
    xg = x.reshape(n, groups, cg, hp, wp)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    rows = []
    for i in range(ho):
        row = [torch.einsum("ngchw,gochw->ngo", _window(xg, i, j, (kh, kw), stride, dilation), wg)
               for j in range(wo)]
        rows.append(torch.stack(row, dim=-1))
    y = torch.stack(rows, dim=-2).reshape(n, o, ho, wo)
    return y if b is None else y + b.reshape(1, o, 1, 1)


def pool2d(x, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
           return_indices):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho = _shapes.pool_out_size(h, kh, ph, sh, dh, ceil_mode)
    wo = _shapes.pool_out_size(w, kw, pw, sw, dw, ceil_mode)
    # Pad so that every window (ceil_mode's last one too) lies inside: -inf never wins a max, 0 adds nothing.
    extra_h = max(0, (ho - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
    extra_w = max(0, (wo - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
    fill = float("-inf") if mode == "max" else 0.0
    xp = F.pad(x, (pw, pw + extra_w, ph, ph + extra_h), value=fill)

    if mode == "avg":
        full_h, valid_h = _shapes.avg_pool_divisors(h, kh, ph, sh, ho, count_include_pad)
        full_w, valid_w = _shapes.avg_pool_divisors(w, kw, pw, sw, wo, count_include_pad)
        div_h, div_w = (full_h, full_w) if count_include_pad else (valid_h, valid_w)
    rows, idx_rows = [], []
    for i in range(ho):
        row, idx_row = [], []
        for j in range(wo):
            win = _window(xp, i, j, kernel, stride, dilation)
            if mode == "avg":
                d = divisor_override if divisor_override is not None else div_h[i] * div_w[j]
                row.append(win.sum(dim=(-2, -1)) / d)
                continue
            val, k = win.flatten(-2).max(dim=-1)  # torch.max: first maximum; NaN wins, as max_pool2d
            row.append(val)
            if return_indices:  # flat index h * W + w into the unpadded input plane, as torch
                idx_row.append((i * sh - ph + (k // kw) * dh) * w + (j * sw - pw + (k % kw) * dw))
        rows.append(torch.stack(row, dim=-1))
        if return_indices:
            idx_rows.append(torch.stack(idx_row, dim=-1))
    y = torch.stack(rows, dim=-2)
    return (y, torch.stack(idx_rows, dim=-2)) if return_indices else y
