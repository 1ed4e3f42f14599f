"""The compiled backend's CUDA kernels (csrc/cuda, issue 7) on device "cuda": the conformance grid of tests/cases.py
and larger shapes against torch.nn.functional (cuDNN, TF32 off) for every CUDA algorithm, gradients (against torch,
gradcheck/gradgradcheck in float64), CUDA against the CPU kernels, the four dtypes, empty batches, layouts,
bitwise determinism, 64-bit indexing, opcheck, torch.compile(mode="reduce-overhead") (CUDA graphs) and the
op-level errors. Skipped, with the reason, where there is no GPU or convkit._C was built without CUDA.

compute-sanitizer (memcheck, racecheck) over a subset: see csrc/README.md, section "CUDA".
"""
import pytest
import torch

import cases
import torch.nn.functional as F

import convkit
from cases import CONV_CASES, POOL_CASES, ConvCase, PoolCase
from convkit.backends import compiled
from convkit.functional import _pair


def _skip_reason() -> str:
    if not torch.cuda.is_available():
        return f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__})"
    info = compiled.build_info()
    if not info["built"]:
        return f"convkit._C is not built ({info['error']})"
    if not info["cuda"]:
        return ("convkit._C built without CUDA (rebuild where a CUDA toolchain and a CUDA-enabled torch are both "
                "present: setup.py prints the flavour it builds)")
    return ""


SKIP = _skip_reason()
pytestmark = pytest.mark.skipif(bool(SKIP), reason=SKIP)
DEV = "cuda"
ops = torch.ops.convkit if hasattr(torch.ops, "convkit") else None
ALGOS = ["auto", "implicit_gemm", "direct"]
TIGHT = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def no_tf32():
    """The oracle in exact fp32 (cuDNN uses TF32 for convolutions by default)."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


# Shapes beyond the shared list that reach every CUDA code path: Cg or Og a multiple of 8 (the aligned k-stage
# loaders) or not, 64/128-wide tiles with partial tiles at every edge, split-K (few positions, long reductions),
# grad_input stride phases with and without taps, depthwise with a channel multiplier, few channels (direct).
GPU_CASES = [
    ConvCase("c16_o24_s2", n=2, c=16, h=11, w=9, o=24, stride=2, padding=1),
    ConvCase("c16_o70", n=3, c=16, h=9, w=10, o=70, padding=1),
    ConvCase("c8_o64_s32_d23", n=1, c=8, h=17, w=15, o=64, k=(3, 2), stride=(3, 2), dilation=(2, 3),
             padding=(2, 1, 0, 3)),
    ConvCase("c24_o16_g2_s2", n=2, c=24, h=10, w=12, o=16, groups=2, stride=2, padding=1),
    ConvCase("c9_1x1", n=3, c=9, h=5, w=5, o=9, k=(1, 1)),
    ConvCase("c40_o130", n=1, c=40, h=7, w=7, o=130, padding=1),
    ConvCase("c64_o64_14", n=2, c=64, h=14, w=14, o=64, padding=1),
    ConvCase("c128_o64_n1_7", n=1, c=128, h=7, w=7, o=64, padding=1),            # split-K forward / grad_input
    ConvCase("c8_o16_40", n=2, c=8, h=40, w=40, o=16, padding=1),                # split-K grad_weight
    ConvCase("c60_o20_6", n=1, c=60, h=6, w=6, o=20, padding=1),                 # split-K, unaligned
    ConvCase("c16_o64_s2_15", n=1, c=16, h=15, w=15, o=64, stride=2, padding=1),  # 4 phases
    ConvCase("s4_k2", n=2, c=8, h=9, w=9, o=8, k=(2, 2), stride=4),              # phases without taps
    ConvCase("dw_s2", n=2, c=8, h=13, w=12, o=8, groups=8, stride=2, padding=1),
    ConvCase("dw_x2_5x5", n=1, c=2, h=40, w=70, o=4, groups=2, k=(5, 5), padding=2),
    ConvCase("dw_64", n=2, c=4, h=64, w=64, o=4, groups=4, padding=1),
    ConvCase("c1_o6_5x5", n=3, c=1, h=28, w=28, o=6, k=(5, 5), padding=2),
    ConvCase("c3_o16_7x7_s2", n=1, c=3, h=30, w=30, o=16, k=(7, 7), stride=2, padding=3),
    ConvCase("c1_o32_5x20_s2", n=1, c=1, h=41, w=90, o=32, k=(5, 20), stride=2),
]
ZERO_PAD = [c for c in CONV_CASES if c.padding_mode == "zeros"]

GPU_POOL_CASES = [
    PoolCase("cl_max_c8", n=2, c=8, h=9, w=8, kernel=3, stride=2, padding=1, layout="channels_last"),
    PoolCase("cl_max_c16_dil", n=1, c=16, h=9, w=9, kernel=3, stride=1, padding=1, dilation=2, layout="channels_last"),
    PoolCase("cl_avg_c8_ceil_excl", mode="avg", n=2, c=8, h=6, w=7, kernel=3, stride=2, padding=1, ceil_mode=True,
             count_include_pad=False, layout="channels_last"),
    PoolCase("max_w8", n=2, c=3, h=8, w=8, kernel=2, stride=2),
    PoolCase("max_w16_3s1", n=1, c=2, h=16, w=16, kernel=3, stride=1, padding=1),
    PoolCase("avg_w8_ceil", mode="avg", n=2, c=3, h=9, w=8, kernel=3, stride=2, padding=1, ceil_mode=True),
    PoolCase("global_7", mode="avg", n=2, c=50, h=7, w=7, kernel=7, stride=7),
    PoolCase("global_div", mode="avg", n=1, c=40, h=5, w=5, kernel=5, stride=5, divisor_override=7),
]
ALL_POOL = POOL_CASES + GPU_POOL_CASES


def conv_op_args(case, dtype=torch.float64, requires_grad=False):
    """(x, w, b, stride, pads, dilation, groups) of a zero-padding case, on the GPU (tests/cases.py)."""
    return cases.conv_op_args(case, dtype, DEV, requires_grad)


def pool_args(case):
    two = lambda v: list(_pair("", v, minimum=0))  # noqa: E731
    return (case.mode, two(case.kernel), two(case.stride), two(case.padding), two(case.dilation), case.ceil_mode,
            case.count_include_pad, case.divisor_override)


def corr2d(case, x, w, b, algo):
    return convkit.corr2d(x, w, b, backend="compiled", algo=algo, **case.kwargs())


def pool(case, x, **kw):
    return convkit.pool2d(x, case.kernel, case.stride, case.padding, backend="compiled", **case.kwargs(), **kw)


def torch_pool_input(case, x):
    """What to hand torch's pooling when its result is the oracle. torch's CUDA avg_pool2d backward gives wrong
    input gradients for channels_last inputs with padding (pytorch/pytorch#188344, fixed by #188345; seen here
    with torch 2.11): there torch pools an NCHW copy, whose gradient flows back to x unchanged."""
    if case.mode == "avg" and x.is_cuda and any(_pair("", case.padding, minimum=0)) and \
            x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return x.contiguous()
    return x


def grads(out, inputs, seed=3):
    gy = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.autograd.grad(out, [t for t in inputs if t is not None], gy.to(out.device, out.dtype))


def assert_rel_close(got, ref, rel):
    assert got.shape == ref.shape and got.dtype == ref.dtype
    if ref.numel():
        err = (got.double() - ref.double()).abs().max().item()
        assert err <= rel * max(1.0, ref.double().abs().max().item()), f"max abs error {err}"


def conv_params(cases, algos=ALGOS):
    return [pytest.param(a, c, id=f"{a}-{c.id}") for a in algos for c in cases]


# --------------------------------------------------------------------------- availability
def test_backend_runs_on_cuda():
    assert "compiled" in convkit.available_backends(DEV)
    from convkit.functional import resolve_backend
    assert resolve_backend("auto", torch.device(DEV), torch.float32) == "compiled"
    for op in ("corr2d", "corr2d_backward", "pool2d", "pool2d_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"convkit::{op}", "CUDA")


# --------------------------------------------------------------------------- corr2d conformance and gradients
@pytest.mark.parametrize("algo,case", conv_params(CONV_CASES + GPU_CASES))
def test_corr2d_matches_torch(algo, case):
    x, w, b = case.inputs(torch.float64, DEV)
    y = corr2d(case, x, w, b, algo)
    assert y.device.type == "cuda"
    torch.testing.assert_close(y, case.oracle(x, w, b), **TIGHT)


@pytest.mark.parametrize("algo,case", conv_params(CONV_CASES + GPU_CASES))
def test_corr2d_grads_match_torch(algo, case):
    x, w, b = case.inputs(torch.float64, DEV)
    for t in (x, w, b):
        if t is not None:
            t.requires_grad_()
    got = grads(corr2d(case, x, w, b, algo), (x, w, b))
    want = grads(case.oracle(x, w, b), (x, w, b))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, **TIGHT)


@pytest.mark.parametrize("algo,case", conv_params(GPU_CASES))
def test_corr2d_float32_matches_torch(algo, case):
    x, w, b = case.inputs(torch.float32, DEV)
    for t in (x, w, b):
        t.requires_grad_()
    y = corr2d(case, x, w, b, algo)
    ref = case.oracle(x, w, b)
    assert_rel_close(y, ref, 1e-4)
    for g, r in zip(grads(y, (x, w, b)), grads(ref, (x, w, b))):
        assert_rel_close(g, r, 1e-4)


@pytest.mark.parametrize("mask", [[True, True, True], [True, False, False], [False, True, False], [False, False, True]])
@pytest.mark.parametrize("algo", ALGOS)
def test_corr2d_backward_op_masks(algo, mask):
    x, w, b, stride, pads, dilation, groups = conv_op_args(GPU_CASES[0])
    gy = torch.randn(ops.corr2d(x, w, b, stride, pads, dilation, groups).shape, dtype=torch.float64, device=DEV)
    got = ops.corr2d_backward(gy, x, w, stride, pads, dilation, groups, mask, algo)
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    ref = F.conv2d(F.pad(xr, (pads[2], pads[3], pads[0], pads[1])), wr, br, stride, 0, dilation, groups)
    want = torch.autograd.grad(ref, (xr, wr, br), gy)
    for m, g, r in zip(mask, got, want):
        if m:
            torch.testing.assert_close(g, r, **TIGHT)
        else:
            assert g is None


GRADCHECK_CONV = [
    ConvCase("small_pad1", n=1, c=2, h=5, w=4, o=2, padding=1),
    ConvCase("small_stride2_asym", n=2, c=2, h=5, w=5, o=3, k=(2, 3), stride=2, padding=(0, 1, 1, 0)),
    ConvCase("small_groups_dil", n=1, c=4, h=6, w=5, o=2, groups=2, dilation=(2, 1), padding=1),
    ConvCase("small_reflect_same", n=1, c=2, h=5, w=4, o=2, padding="same", padding_mode="reflect"),
]


@pytest.mark.parametrize("algo,case", conv_params(GRADCHECK_CONV))
def test_corr2d_gradcheck(algo, case):
    x, w, b = (t.requires_grad_() for t in case.inputs(torch.float64, DEV))
    f = lambda x, w, b: corr2d(case, x, w, b, algo)  # noqa: E731
    # reflect/replicate/circular padding is torch's F.pad, whose CUDA backward adds with atomics: its reentrant
    # check needs a tolerance (convkit's own kernels are bitwise deterministic, test_runs_are_bitwise_identical)
    tol = dict(nondet_tol=1e-12) if case.padding_mode != "zeros" else {}
    assert torch.autograd.gradcheck(f, (x, w, b), **tol)
    assert torch.autograd.gradgradcheck(f, (x, w, b), **tol)


# --------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("case", ALL_POOL, ids=lambda c: c.id)
def test_pool2d_matches_torch(case):
    x = case.inputs(torch.float64, DEV)
    y = pool(case, x)
    torch.testing.assert_close(y, case.oracle(x), rtol=1e-12, atol=1e-12)
    if case.mode == "max":  # the same kernel formulas as torch's CUDA kernels: values and indices identical
        y, i = pool(case, x, return_indices=True)
        ry, ri = case.oracle(x, return_indices=True)
        assert torch.equal(y, ry) and torch.equal(i, ri)
    if case.layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("case", ALL_POOL, ids=lambda c: c.id)
def test_pool2d_grads_match_torch(case):
    x = case.inputs(torch.float64, DEV).requires_grad_()
    (got,) = grads(pool(case, x), (x,))
    (want,) = grads(case.oracle(torch_pool_input(case, x)), (x,))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    if case.layout == "channels_last":
        assert got.is_contiguous(memory_format=torch.channels_last)


GRADCHECK_POOL = [
    PoolCase("max_3x3_s2_p1_ceil", n=1, c=2, h=6, w=5, kernel=3, padding=1, ceil_mode=True),
    PoolCase("max_dil", n=1, c=2, h=7, w=6, kernel=2, stride=1, dilation=2),
    PoolCase("avg_ceil_excl", mode="avg", n=1, c=2, h=6, w=5, kernel=3, padding=1, ceil_mode=True,
             count_include_pad=False),
    PoolCase("avg_divisor_cl", mode="avg", n=1, c=4, h=5, w=5, kernel=2, stride=1, divisor_override=3,
             layout="channels_last"),
]


@pytest.mark.parametrize("case", GRADCHECK_POOL, ids=lambda c: c.id)
def test_pool2d_gradcheck(case):
    x = case.inputs(torch.float64, DEV).requires_grad_()
    f = lambda x: pool(case, x)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_max_pool_nan_and_ties_like_torch():
    x = torch.tensor([[[[1.0, float("nan"), 3.0, 3.0], [float("nan"), 0.0, 3.0, 2.0]]]], device=DEV)
    for xx in (x, x.expand(1, 4, 2, 4).contiguous(memory_format=torch.channels_last)):
        y, i = convkit.pool2d(xx, 2, 2, return_indices=True, backend="compiled")
        ry, ri = F.max_pool2d(xx, 2, 2, return_indices=True)
        assert torch.equal(y.isnan(), ry.isnan()) and torch.equal(y.nan_to_num(), ry.nan_to_num())
        assert torch.equal(i, ri)


# --------------------------------------------------------------------------- CUDA against the CPU kernels
@pytest.mark.parametrize("algo,case", conv_params([c for c in ZERO_PAD if c.n] + GPU_CASES[:8]))
def test_corr2d_cuda_matches_cpu(algo, case):
    x, w, b = case.inputs(torch.float64)
    results = []
    for dev in ("cpu", DEV):
        xd, wd, bd = (t.to(dev).requires_grad_() if t is not None else None for t in (x, w, b))
        y = convkit.corr2d(xd, wd, bd, backend="compiled", algo=algo if dev == DEV else "auto", **case.kwargs())
        results.append([y, *grads(y, (xd, wd, bd))])
    for c, g in zip(*results):
        torch.testing.assert_close(g.cpu(), c, **TIGHT)


@pytest.mark.parametrize("case", [c for c in ALL_POOL if c.n], ids=lambda c: c.id)
def test_pool2d_cuda_matches_cpu(case):
    x = case.inputs(torch.float64)
    results = []
    for dev in ("cpu", DEV):
        xd = x.to(dev).requires_grad_()
        y = pool(case, xd)
        results.append([y, *grads(y, (xd,))])
        if case.mode == "max":
            results[-1].append(pool(case, xd.detach(), return_indices=True)[1])
    for c, g in zip(*results):
        torch.testing.assert_close(g.cpu(), c, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- dtypes, empty batches, layouts
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("algo,case", conv_params([CONV_CASES[1], GPU_CASES[1], GPU_CASES[6], GPU_CASES[12]]))
def test_reduced_precision_within_twice_torch_error(dtype, algo, case):
    """Outputs and gradients in `dtype` at most 2x torch's own error there (plus a floor), against float64 on the
    same rounded inputs and the same rounded grad_output."""
    xs, ws, bs = (t.to(dtype).requires_grad_() for t in case.inputs(torch.float64, DEV))
    xr, wr, br = (t.detach().double().requires_grad_() for t in (xs, ws, bs))
    ref = case.oracle(xr, wr, br)
    gy = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3)).to(DEV, dtype)
    y = corr2d(case, xs, ws, bs, algo)
    theirs = case.oracle(xs, ws, bs)
    assert y.dtype == dtype
    ours = [y, *torch.autograd.grad(y, (xs, ws, bs), gy)]
    torch_ = [theirs, *torch.autograd.grad(theirs, (xs, ws, bs), gy)]
    exact = [ref, *torch.autograd.grad(ref, (xr, wr, br), gy.double())]
    floor = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}[dtype]
    for g, t, r in zip(ours, torch_, exact):
        assert g.dtype == dtype
        torch_err = (t.double() - r).abs().max().item()
        assert (g.double() - r).abs().max().item() <= 2 * torch_err + floor * max(1.0, r.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("case", [POOL_CASES[1], POOL_CASES[10], GPU_POOL_CASES[0], GPU_POOL_CASES[2],
                                  GPU_POOL_CASES[6]], ids=lambda c: c.id)
def test_pool2d_reduced_precision(dtype, case):
    x = case.inputs(torch.float64, DEV).to(dtype).requires_grad_()
    y, theirs = pool(case, x), case.oracle(torch_pool_input(case, x))
    assert y.dtype == dtype
    torch.testing.assert_close(y, theirs)  # max: exact; avg: summed in float32 like torch
    # gradients (several windows add up on overlaps): at most 2x torch's error against float64, plus a floor
    xr = x.detach().double().requires_grad_()
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(DEV, dtype)
    (g,) = torch.autograd.grad(y, x, gy)
    (t,) = torch.autograd.grad(theirs, x, gy)
    (r,) = torch.autograd.grad(case.oracle(torch_pool_input(case, xr)), xr, gy.double())
    assert g.dtype == dtype
    floor = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}[dtype] * max(1.0, r.abs().max().item())
    assert (g.double() - r).abs().max().item() <= 2 * (t.double() - r).abs().max().item() + floor


@pytest.mark.parametrize("algo", ALGOS)
def test_empty_batch(algo):
    x = torch.randn(0, 4, 9, 8, device=DEV, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, device=DEV, requires_grad=True)
    b = torch.randn(6, device=DEV, requires_grad=True)
    y = convkit.corr2d(x, w, b, padding=1, groups=2, backend="compiled", algo=algo)
    assert y.shape == (0, 6, 9, 8)
    gx, gw, gb = torch.autograd.grad(y.sum(), (x, w, b))
    assert gx.shape == x.shape and torch.equal(gw, torch.zeros_like(w)) and torch.equal(gb, torch.zeros_like(b))
    for mode in ("max", "avg"):
        p = convkit.pool2d(x, 2, 2, mode=mode, backend="compiled")
        assert p.shape == (0, 4, 4, 4)
        assert torch.autograd.grad(p.sum(), x)[0].shape == x.shape


@pytest.mark.parametrize("algo", ALGOS)
def test_layouts_give_the_same_results(algo):
    g = torch.Generator().manual_seed(0)
    big = torch.randn(2, 16, 13, 22, generator=g, dtype=torch.float64).to(DEV)
    x = big[..., ::2].contiguous()
    w = torch.randn(24, 16, 3, 3, generator=g, dtype=torch.float64).to(DEV)
    views = [x, x.contiguous(memory_format=torch.channels_last), big[..., ::2],
             x.transpose(2, 3).contiguous().transpose(2, 3)]
    outs = [convkit.corr2d(v, w, None, 1, 1, backend="compiled", algo=algo) for v in views]
    for o in outs:
        assert o.is_contiguous() and torch.equal(o, outs[0])
    y = convkit.corr2d(x, w.transpose(2, 3).contiguous().transpose(2, 3), None, 1, 1, backend="compiled", algo=algo)
    assert torch.equal(y, outs[0])  # a non-contiguous weight


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", [
    # (N, C, H, W, O, stride, groups): split-K forward and grad_input (N = 1, long reductions), split-K
    # grad_weight and grad_bias (many positions), depthwise direct grad_weight splits, strided phases
    (1, 256, 7, 7, 256, 1, 1),
    (8, 64, 28, 28, 64, 1, 1),
    (4, 32, 56, 56, 32, 1, 32),
    (2, 64, 29, 31, 128, 2, 1),
])
def test_runs_are_bitwise_identical(algo, shape):
    n, c, h, w, o, s, groups = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g).to(DEV).requires_grad_()
    wt = torch.randn(o, c // groups, 3, 3, generator=g).to(DEV).requires_grad_()
    b = torch.randn(o, generator=g).to(DEV).requires_grad_()
    runs = []
    for _ in range(2):
        y = convkit.corr2d(x, wt, b, s, 1, 1, groups, backend="compiled", algo=algo)
        gx, gw, gb = torch.autograd.grad(y, (x, wt, b), torch.ones_like(y))
        p, i = convkit.pool2d(x, 3, 2, 1, return_indices=True, backend="compiled")
        (gp,) = torch.autograd.grad(convkit.pool2d(x, 3, 2, 1, mode="avg", backend="compiled").sum() + p.sum(), x)
        runs.append((y, gx, gw, gb, p, i, gp))
    for a, b_ in zip(*runs):
        assert torch.equal(a, b_)


# --------------------------------------------------------------------------- 64-bit indexing
def _free_gib():
    free, _ = torch.cuda.mem_get_info()
    return free / 2**30


@pytest.mark.skipif(bool(SKIP) or _free_gib() < 24, reason=SKIP or "needs 24 GiB of free GPU memory")
def test_pool2d_beyond_2_pow_31_elements():
    x = torch.randn(33000, 16, 64, 64, dtype=torch.float16, device=DEV)  # 2.16e9 elements
    y, i = convkit.pool2d(x, 2, 2, return_indices=True, backend="compiled")
    ry, ri = F.max_pool2d(x, 2, 2, return_indices=True)
    assert torch.equal(y, ry) and torch.equal(i, ri)
    del y, i, ry, ri
    a = convkit.pool2d(x, 2, 2, mode="avg", backend="compiled")
    assert torch.equal(a[-3:], F.avg_pool2d(x[-3:], 2, 2))


@pytest.mark.skipif(bool(SKIP) or _free_gib() < 24, reason=SKIP or "needs 24 GiB of free GPU memory")
@pytest.mark.parametrize("algo", ALGOS)
def test_corr2d_beyond_2_pow_31_elements(algo):
    g = torch.Generator(device=DEV).manual_seed(0)
    x = torch.randn(2100, 4, 512, 512, dtype=torch.float16, device=DEV, generator=g)  # 2.2e9 elements
    w = torch.randn(4, 4, 3, 3, dtype=torch.float16, device=DEV, generator=g)
    y = convkit.corr2d(x, w, None, 1, 1, backend="compiled", algo=algo)
    ref = F.conv2d(x[-2:].float(), w.float(), None, 1, 1)
    assert_rel_close(y[-2:].float(), ref, 2e-3)


# --------------------------------------------------------------------------- opcheck, torch.compile, errors
@pytest.mark.parametrize("algo,case", conv_params(ZERO_PAD[:6] + GPU_CASES[6:8]))
def test_opcheck_corr2d(algo, case):
    x, w, b, *conf = conv_op_args(case, requires_grad=True)
    torch.library.opcheck(ops.corr2d.default, (x, w, b, *conf, algo))


@pytest.mark.parametrize("mask", [[True, True, True], [True, False, False], [False, True, False]])
@pytest.mark.parametrize("case", ZERO_PAD[:4] + GPU_CASES[:1], ids=lambda c: c.id)
def test_opcheck_corr2d_backward(case, mask):
    x, w, b, *conf = conv_op_args(case, requires_grad=True)
    gy = torch.randn_like(ops.corr2d(x, w, b, *conf)).requires_grad_()
    torch.library.opcheck(ops.corr2d_backward.default, (gy, x, w, *conf, mask, "auto"))


@pytest.mark.parametrize("case", POOL_CASES[:3] + POOL_CASES[9:11] + GPU_POOL_CASES[:3], ids=lambda c: c.id)
def test_opcheck_pool2d_and_backward(case):
    x = case.inputs(torch.float64, DEV).requires_grad_()
    args = (x, *pool_args(case))
    torch.library.opcheck(ops.pool2d.default, args)
    y, idx = ops.pool2d(*args)
    gy = torch.randn_like(y).requires_grad_()
    torch.library.opcheck(ops.pool2d_backward.default, (gy, x, idx, *args[1:]))


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            convkit.nn.Conv2d(1, 4, 5, padding=2, backend="compiled"), torch.nn.ReLU(),
            convkit.nn.MaxPool2d(2, backend="compiled"),
            convkit.nn.Conv2d(4, 16, 3, padding="same", stride=2, backend="compiled"), torch.nn.Sigmoid(),
            convkit.nn.AvgPool2d(2, ceil_mode=True, backend="compiled"),
            convkit.nn.Conv2d(16, 32, 1, backend="compiled"), torch.nn.Flatten(),
            torch.nn.Linear(32 * 2 * 2, 3))

    def forward(self, x):
        return self.net(x)


def test_torch_compile_reduce_overhead_matches_eager():
    """CUDA graphs record every launch: a kernel on the wrong stream or a host sync would fail or diverge here."""
    torch.manual_seed(0)
    model = SmallCNN().to(DEV)
    params = list(model.parameters())
    x = torch.randn(8, 1, 14, 14, device=DEV)
    compiled_model = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    for _ in range(4):  # warm-up, record, replays
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled_model(x)
        gs = torch.autograd.grad(out.square().sum(), params)
        out_c, grads_c = out.detach().clone(), [g.clone() for g in gs]
    out_e = model(x)
    grads_e = torch.autograd.grad(out_e.square().sum(), params)
    torch.testing.assert_close(out_c, out_e, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_c, grads_e):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("algo", ["im2col", "winograd"])
def test_cpu_only_algos_are_refused(algo):
    x, w, b, *conf = conv_op_args(CONV_CASES[1])
    with pytest.raises(RuntimeError, match=f"algo '{algo}' is not implemented on CUDA.*'auto', 'direct' and "
                                           "'implicit_gemm'"):
        ops.corr2d(x, w, b, *conf, algo)
    with pytest.raises(RuntimeError, match="not implemented on CUDA"):
        ops.corr2d_backward(torch.ones_like(ops.corr2d(x, w, b, *conf)), x, w, *conf, [True, True, True], algo)
    with pytest.raises(ValueError, match="not implemented on cuda"):
        convkit.corr2d(x, w, b, backend="compiled", algo=algo)


def test_direct_op_calls_check_devices_and_shapes():
    x = torch.randn(1, 3, 5, 5, device=DEV)
    w = torch.randn(2, 3, 3, 3, device=DEV)
    conf = ([1, 1], [0, 0, 0, 0], [1, 1], 1)
    with pytest.raises(RuntimeError, match="weight must be on the same CUDA device as input"):
        ops.corr2d(x, w.cpu(), None, *conf)
    with pytest.raises(RuntimeError, match="bias must be on the same CUDA device as input"):
        ops.corr2d(x, w, torch.zeros(2), *conf)
    with pytest.raises(RuntimeError, match="grad_output must be on the same CUDA device"):
        ops.corr2d_backward(torch.ones(1, 2, 3, 3), x, w, *conf, [True, True, True])
    with pytest.raises(RuntimeError, match="grad_output must have shape"):
        ops.corr2d_backward(torch.ones(1, 2, 4, 4, device=DEV), x, w, *conf, [True, True, True])
    with pytest.raises(RuntimeError, match="input has 3 channels"):
        ops.corr2d(x, torch.randn(1, 2, 3, 3, device=DEV), None, *conf)
    y, i = ops.pool2d(x, "max", [2, 2], [2, 2], [0, 0], [1, 1], False, True, None)
    with pytest.raises(RuntimeError, match="indices must be on the same CUDA device"):
        ops.pool2d_backward(torch.ones_like(y), x, i.cpu(), "max", [2, 2], [2, 2], [0, 0], [1, 1], False, True, None)
    with pytest.raises(RuntimeError, match="padding must be at most half"):
        ops.pool2d(x, "max", [2, 2], [2, 2], [2, 0], [1, 1], False, True, None)
