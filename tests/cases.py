"""The shared case list: conformance, gradients, opcheck and `bench --quick` all iterate over it.

Every case carries what the oracle needs (torch.nn.functional on explicitly padded input), so the
oracle never goes through convkit's own padding formulas.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class ConvCase:
    id: str
    n: int = 2
    c: int = 3
    h: int = 7
    w: int = 6
    o: int = 4
    k: tuple = (3, 3)
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    padding_mode: str = "zeros"
    oracle_pads: tuple | None = None   # (top, bottom, left, right) the oracle pads with
    layout: str = "contiguous"         # or "noncontiguous", "channels_last"
    bias: bool = True

    def inputs(self, dtype=torch.float64, device="cpu", seed=0):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(self.n, self.c, self.h, self.w, generator=g, dtype=torch.float64)
        if self.layout == "noncontiguous":
            x = torch.randn(self.n, self.c, self.w, self.h, generator=g, dtype=torch.float64).transpose(2, 3)
        wt = torch.randn(self.o, self.c // self.groups, *self.k, generator=g, dtype=torch.float64)
        b = torch.randn(self.o, generator=g, dtype=torch.float64) if self.bias else None
        x, wt = x.to(device, dtype), wt.to(device, dtype)
        b = b.to(device, dtype) if b is not None else None
        if self.layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        return x, wt, b

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode)

    def oracle(self, x, wt, b):
        pads = self.oracle_pads
        if pads is None:
            p = self.padding
            pads = (p, p, p, p) if isinstance(p, int) else (p[0], p[0], p[1], p[1]) if len(p) == 2 else tuple(p)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        xp = F.pad(x, (pads[2], pads[3], pads[0], pads[1]), mode=mode)
        return F.conv2d(xp, wt, b, self.stride, 0, self.dilation, self.groups)


CONV_CASES = [
    ConvCase("1x1", k=(1, 1)),
    ConvCase("3x3_pad1", padding=1),
    ConvCase("kernel_eq_input", h=5, w=4, k=(5, 4)),
    ConvCase("odd_sizes", c=3, h=9, w=7, o=5, k=(3, 2)),
    ConvCase("stride2_pad1", h=8, w=9, stride=2, padding=1),
    ConvCase("stride21_pad10", h=8, w=7, stride=(2, 1), padding=(1, 0)),
    ConvCase("asym_pad", padding=(1, 2, 0, 3)),
    ConvCase("valid", padding="valid", oracle_pads=(0, 0, 0, 0)),
    ConvCase("same_s1", k=(3, 4), padding="same", oracle_pads=(1, 1, 1, 2)),
    ConvCase("same_s2", h=8, w=7, k=(3, 4), stride=2, padding="same", oracle_pads=(0, 1, 1, 2)),
    ConvCase("dilation2", h=9, w=8, padding=2, dilation=2),
    ConvCase("dilation_12", h=9, w=8, k=(2, 3), dilation=(1, 2), stride=(1, 2)),
    ConvCase("groups2", c=4, o=6, groups=2, padding=1),
    ConvCase("depthwise", c=4, o=4, groups=4, padding=1),
    ConvCase("depthwise_x2", c=3, o=6, groups=3, stride=2),
    ConvCase("reflect", padding=(1, 2), padding_mode="reflect"),
    ConvCase("replicate", padding=(2, 1, 0, 1), padding_mode="replicate"),
    ConvCase("circular", padding=1, padding_mode="circular"),
    ConvCase("no_bias", padding=1, bias=False),
    ConvCase("batch0", n=0, padding=1),
    ConvCase("noncontiguous", padding=1, layout="noncontiguous"),
    ConvCase("channels_last", padding=1, layout="channels_last"),
]


@dataclasses.dataclass(frozen=True)
class PoolCase:
    id: str
    mode: str = "max"
    n: int = 2
    c: int = 3
    h: int = 7
    w: int = 6
    kernel: object = 2
    stride: object = 2
    padding: object = 0
    dilation: object = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None
    layout: str = "contiguous"

    def inputs(self, dtype=torch.float64, device="cpu", seed=0):
        g = torch.Generator().manual_seed(seed)
        if self.layout == "noncontiguous":
            x = torch.randn(self.n, self.c, self.w, self.h, generator=g, dtype=torch.float64).transpose(2, 3)
        else:
            x = torch.randn(self.n, self.c, self.h, self.w, generator=g, dtype=torch.float64)
        x = x.to(device, dtype)
        if self.layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def kwargs(self):
        kw = dict(mode=self.mode, ceil_mode=self.ceil_mode)
        if self.mode == "max":
            kw["dilation"] = self.dilation
        else:
            kw.update(count_include_pad=self.count_include_pad, divisor_override=self.divisor_override)
        return kw

    def oracle(self, x, return_indices=False):
        if self.mode == "max":
            return F.max_pool2d(x, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode,
                                return_indices)
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)


POOL_CASES = [
    PoolCase("max_2x2_s2"),
    PoolCase("max_3x3_s2_p1", h=9, w=8, kernel=3, padding=1),
    PoolCase("max_3x3_s1_p1", kernel=3, stride=1, padding=1),
    PoolCase("max_rect", kernel=(2, 3), stride=(1, 2), padding=(1, 1)),
    PoolCase("max_dilation2", h=9, w=9, kernel=3, stride=1, padding=1, dilation=2),
    PoolCase("max_ceil", h=5, w=7, kernel=2, stride=2, ceil_mode=True),
    PoolCase("max_ceil_drop_last", h=5, w=5, kernel=2, stride=2, padding=1, ceil_mode=True),
    PoolCase("max_ceil_3x3_s2_p1", h=6, w=8, kernel=3, stride=2, padding=1, ceil_mode=True),
    PoolCase("max_kernel_eq_input", h=5, w=4, kernel=(5, 4), stride=1),
    PoolCase("avg_2x2_s2", mode="avg"),
    PoolCase("avg_3x3_s2_p1", mode="avg", h=9, w=8, kernel=3, padding=1),
    PoolCase("avg_exclude_pad", mode="avg", h=9, w=8, kernel=3, padding=1, count_include_pad=False),
    PoolCase("avg_ceil_pad", mode="avg", h=6, w=7, kernel=3, stride=2, padding=1, ceil_mode=True),
    PoolCase("avg_ceil_exclude_pad", mode="avg", h=6, w=7, kernel=3, stride=2, padding=1, ceil_mode=True,
             count_include_pad=False),
    PoolCase("avg_divisor_override", mode="avg", kernel=3, stride=1, padding=1, divisor_override=3),
    PoolCase("avg_global", mode="avg", h=7, w=7, kernel=7, stride=7),
    PoolCase("avg_s1", mode="avg", kernel=(2, 3), stride=1),
    PoolCase("batch0_max", n=0),
    PoolCase("batch0_avg", n=0, mode="avg"),
    PoolCase("noncontiguous_max", layout="noncontiguous", kernel=3, stride=2, padding=1),
    PoolCase("channels_last_avg", mode="avg", layout="channels_last", kernel=3, stride=2, padding=1),
]


def conv_op_args(case, dtype=torch.float64, device="cpu", requires_grad=True):
    """torch.ops.convkit.corr2d's arguments (without algo) for a zero-padding case:
    (x, w, b, stride, (top, bottom, left, right), dilation, groups), padding resolved as convkit.functional does."""
    from convkit.functional import _conv_padding, _pair

    x, w, b = case.inputs(dtype, device)
    stride, dilation = _pair("stride", case.stride, minimum=1), _pair("dilation", case.dilation, minimum=1)
    pads = _conv_padding(case.padding, (case.h, case.w), case.k, stride, dilation)
    if requires_grad:
        for t in (x, w, b):
            if t is not None:
                t.requires_grad_()
    return x, w, b, list(stride), list(pads), list(dilation), case.groups
