"""The compiled pooling kernels' fast paths against torch, bit for bit where torch's order is the same.

The shared conformance grid (tests/cases.py) uses small images, which take the scalar path; here the images
are wide enough for the vectorised interior (stride 1 and 2, 16 fp32 / 8 fp64 lanes plus edges), the global
average path and the channels_last kernels, with ties (few distinct values), NaN and -inf windows.
"""
import itertools

import pytest
import torch
import torch.nn.functional as F

import convkit
from conftest import COMPILED_SKIP

pytestmark = COMPILED_SKIP
ops = torch.ops.convkit if hasattr(torch.ops, "convkit") else None

# (kernel, stride, padding, dilation, ceil_mode): the common windows and the awkward ones
WINDOWS = [((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 3), (2, 2), (1, 1), (1, 1), False),
           ((3, 3), (1, 1), (1, 1), (1, 1), False), ((3, 3), (2, 2), (1, 1), (1, 1), True),
           ((2, 3), (1, 2), (1, 1), (1, 1), True), ((3, 2), (3, 3), (1, 0), (1, 1), False),
           ((3, 3), (2, 1), (1, 0), (2, 2), False), ((5, 5), (2, 2), (2, 2), (1, 1), True)]
SIZES = [(2, 3, 9, 37), (1, 2, 20, 71), (1, 4, 6, 16)]
LAYOUTS = ["nchw", "channels_last"]


def make_input(shape, dtype, layout, kind):
    g = torch.Generator().manual_seed(hash((shape, kind)) % 2**31)
    if kind == "ties":  # few distinct values: ties in almost every window
        x = torch.randint(0, 3, shape, generator=g).to(dtype)
    else:
        x = torch.randn(shape, generator=g, dtype=dtype)
    if kind == "nan":
        x.view(-1)[torch.randperm(x.numel(), generator=g)[: x.numel() // 7]] = float("nan")
        x.view(-1)[torch.randperm(x.numel(), generator=g)[: x.numel() // 5]] = float("-inf")
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def op(x, mode, win, return_indices=True, count_include_pad=True, divisor_override=None):
    k, s, p, d, ceil = win
    return ops.pool2d(x, mode, list(k), list(s), list(p), list(d), ceil, count_include_pad, divisor_override,
                      return_indices)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", ["randn", "ties", "nan"])
@pytest.mark.parametrize("win", WINDOWS, ids=str)
def test_max_forward_matches_torch_exactly(win, kind, layout, dtype):
    k, s, p, d, ceil = win
    for shape in SIZES:
        x = make_input(shape, dtype, layout, kind)
        y, i = op(x, "max", win)
        ry, ri = F.max_pool2d(x.contiguous(), k, s, p, d, ceil, return_indices=True)
        assert torch.equal(y.isnan(), ry.isnan())
        assert torch.equal(y.nan_to_num(), ry.nan_to_num()), shape
        assert torch.equal(i, ri), shape
        y2, i2 = op(x, "max", win, return_indices=False)
        assert i2.numel() == 0 and torch.equal(y2.nan_to_num(), y.nan_to_num())
        if layout == "channels_last":  # torch's layout rule: channels_last in, channels_last out
            assert y.is_contiguous(memory_format=torch.channels_last) and i.stride() == y.stride()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("opts", [(True, None), (False, None), (True, 7)], ids=str)
@pytest.mark.parametrize("win", [w for w in WINDOWS if w[3] == (1, 1)], ids=str)
def test_avg_forward_and_backward_match_torch(win, opts, layout, dtype):
    k, s, p, _, ceil = win
    cip, div = opts
    for shape in SIZES:
        x = make_input(shape, dtype, layout, "randn").requires_grad_()
        y = op(x, "avg", win, count_include_pad=cip, divisor_override=div)[0]
        ref = F.avg_pool2d(x, k, s, p, ceil, cip, div)
        torch.testing.assert_close(y, ref, rtol=0, atol=0)  # same summation order as torch's kernel
        gy = torch.randn_like(ref)
        (gx,) = torch.autograd.grad(y, x, gy)
        (rgx,) = torch.autograd.grad(ref, x, gy)
        torch.testing.assert_close(gx, rgx)
        if layout == "channels_last":
            assert gx.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("div", [None, 3])
@pytest.mark.parametrize("kh", [1, 2, 3])
def test_avg_backward_of_exact_pair_tiles_matches_torch_bitwise(kh, div, dtype):
    # kw = sw = 2, kh = sh, no padding, windows tiling the plane: grad_input is written once, each value into
    # its lane pair (Wo 32 and 20 at 16 fp32 lanes: whole blocks and an overlapping last block). An odd W, and
    # for kh > 1 an H one row past whole windows, take the general path; both must equal torch's bit for bit,
    # signed zeros included (torch's 0 + d turns -0.0 into +0.0). Which path ran is not visible from here:
    # the two must agree, and a wrong pair kernel (lanes, rows, divisor) shows as a mismatch.
    g = torch.Generator().manual_seed(11)
    shapes = [(2, 3, 4 * kh, 64), (1, 2, 2 * kh, 40), (1, 2, 2 * kh, 41)] + ([(1, 2, 2 * kh + 1, 40)] if kh > 1 else [])
    for shape in shapes:
        x = torch.randn(shape, generator=g, dtype=dtype).requires_grad_()
        y = op(x, "avg", ((kh, 2), (kh, 2), (0, 0), (1, 1), False), divisor_override=div)[0]
        ref = F.avg_pool2d(x, (kh, 2), (kh, 2), 0, False, True, div)
        gy = torch.randn(ref.shape, generator=g, dtype=dtype)
        gy.view(-1)[::5] = -0.0
        (gx,) = torch.autograd.grad(y, x, gy)
        (rgx,) = torch.autograd.grad(ref, x, gy)
        assert torch.equal(gx, rgx) and torch.equal(gx.signbit(), rgx.signbit()), shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("win", WINDOWS, ids=str)
def test_max_backward_matches_torch(win, layout, dtype):
    k, s, p, d, ceil = win
    for shape in SIZES:
        x = make_input(shape, dtype, layout, "ties").requires_grad_()
        y = convkit.max_pool2d(x, k, s, p, d, ceil, backend="compiled")
        ref = F.max_pool2d(x, k, s, p, d, ceil)
        gy = torch.randn_like(ref)
        torch.testing.assert_close(torch.autograd.grad(y, x, gy)[0], torch.autograd.grad(ref, x, gy)[0])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(2, 5, 7, 7), (1, 3, 1, 1), (2, 4, 13, 21)])
def test_global_average(shape, layout):
    x = make_input(shape, torch.float64, layout, "randn").requires_grad_()
    win = (shape[2:], shape[2:], (0, 0), (1, 1), False)
    y = op(x, "avg", win)[0]
    ref = x.mean((2, 3), keepdim=True)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0])


def test_indices_skipped_only_when_not_needed():
    x = torch.randn(1, 2, 8, 40)
    with torch.no_grad():
        assert convkit.max_pool2d(x, 2, backend="compiled").shape == (1, 2, 4, 20)
    xr = x.clone().requires_grad_()
    y = convkit.max_pool2d(xr, 2, backend="compiled")
    (g,) = torch.autograd.grad(y.sum(), xr)
    torch.testing.assert_close(g, torch.autograd.grad(F.max_pool2d(xr, 2).sum(), xr)[0])
    # a direct op call without indices on an input that requires grad still differentiates (recomputes them)
    y, i = ops.pool2d(xr, "max", [2, 2], [2, 2], [0, 0], [1, 1], False, True, None, False)
    assert i.numel() == 0
    torch.testing.assert_close(torch.autograd.grad(y.sum(), xr)[0], g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("win", [((3, 3), (1, 1), (1, 1), (1, 1), False), ((3, 3), (2, 2), (1, 1), (1, 1), True),
                                 ((70, 3), (1, 2), (1, 1), (1, 2), False), ((1, 1), (2, 1), (0, 0), (1, 1), True)],
                         ids=str)
def test_max_values_path_keeps_torch_order(win, dtype):
    # The inference path (no indices, separable rows): -0.0 / +0.0 ties keep the first in row-major order,
    # NaN wins, all-padding-free windows of -inf stay -inf, and windows taller than its row table (70 rows).
    k, s, p, d, ceil = win
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-1, 2, (2, 3, 80, 45), generator=g).to(dtype) * 0.0  # +0.0 and -0.0
    x[0, 0, 7, 9] = float("nan")
    x[0, 1, :10] = float("-inf")
    x[1, 2, 3:6, 20:30] = torch.randn(3, 10, generator=g, dtype=dtype)
    y, i = op(x, "max", win, return_indices=False)
    ry = F.max_pool2d(x, k, s, p, d, ceil)
    assert i.numel() == 0 and y.shape == ry.shape
    assert torch.equal(y.isnan(), ry.isnan())
    assert torch.equal(y.nan_to_num(), ry.nan_to_num()) and torch.equal(y.signbit(), ry.signbit())


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_count_does_not_change_results(threads):
    old = torch.get_num_threads()
    x = make_input((3, 5, 33, 70), torch.float32, "nchw", "randn")
    outs = []
    try:
        for t, layout in itertools.product((1, threads), LAYOUTS):
            torch.set_num_threads(t)
            xi = x.contiguous(memory_format=torch.channels_last) if layout != "nchw" else x
            xi = xi.detach().requires_grad_()
            y = convkit.avg_pool2d(xi, 3, 1, 1, backend="compiled")
            outs.append((layout, y.detach().contiguous(), torch.autograd.grad(y, xi, torch.ones_like(y))[0]))
    finally:
        torch.set_num_threads(old)
    for layout in LAYOUTS:
        a, b = [o for o in outs if o[0] == layout]
        assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_opcheck_fast_paths(layout):
    x = make_input((2, 3, 9, 40), torch.float32, layout, "randn").requires_grad_()
    for mode, win in [("max", WINDOWS[1]), ("avg", WINDOWS[0]), ("max", WINDOWS[2])]:
        k, s, p, d, ceil = win
        torch.library.opcheck(ops.pool2d.default, (x, mode, list(k), list(s), list(p), list(d), ceil, True, None))
