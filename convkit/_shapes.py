"""The only Python copy of the output-size and padding formulas.

C++ has its twin in csrc/common.h; tests check both against torch.
"""
from __future__ import annotations


def conv_out_size(n: int, k: int, pad_total: int, stride: int, dilation: int) -> int:
    """floor((n + pad_total - dilation*(k-1) - 1) / stride) + 1, as torch.nn.functional.conv2d."""
    return (n + pad_total - dilation * (k - 1) - 1) // stride + 1


def same_padding(n: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same": output ceil(n / stride); the odd pixel of padding goes after (bottom/right).

    For stride 1 this is exactly torch's padding="same".
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def pool_out_size(n: int, k: int, pad: int, stride: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape: with ceil_mode a window must start inside the input or left padding."""
    eff = dilation * (k - 1) + 1
    num = n + 2 * pad - eff + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= n + pad:
        out -= 1
    return out


def avg_pool_divisors(n: int, k: int, pad: int, stride: int, out: int, count_include_pad: bool):
    """Per output index along one axis: (window size clipped to the padded input, clipped to the input).

    torch divides by the product over both axes of the first (count_include_pad) or the second.
    """
    full, valid = [], []
    for o in range(out):
        start = o * stride - pad
        end = min(start + k, n + pad)
        full.append(end - start)
        valid.append(max(min(end, n) - max(start, 0), 0))
    return full, valid
