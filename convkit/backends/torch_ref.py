"""torch.nn.functional: the reference and the benchmark baseline (oneDNN on CPU, cuDNN on GPU).

Memory: whatever torch allocates (oneDNN reorders NCHW to a blocked layout on CPU).
Asymmetric padding is applied with F.pad first, as torch.nn.Conv2d does for padding="same".
"""
from __future__ import annotations

import torch.nn.functional as F


def corr2d(x, w, b, stride, padding, dilation, groups):
    top, bottom, left, right = padding
    if top == bottom and left == right:
        return F.conv2d(x, w, b, stride, (top, left), dilation, groups)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride, 0, dilation, groups)


def pool2d(x, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
           return_indices):
    if mode == "max":
        return F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices)
    return F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
