"""The compiled backend's corr2d algorithms, each one forced (issue 5): conformance in float64 and float32,
gradients (gradcheck, gradgradcheck, against torch), opcheck, torch.compile, thread determinism, "auto"
equal to the path it chooses, the errors of the Python and op-level checks, the eager entry point, and
edge cases (empty batch, half types, layouts, groups, no bias).

What applies where on CPU: "direct" needs column stride 1; "winograd" needs 3x3 and stride 1;
"auto", "implicit_gemm" and "im2col" take any shape.
"""
import functools
import os
import subprocess
import sys

import pytest
import torch

import cases
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import convkit
from cases import CONV_CASES, ConvCase
from conftest import COMPILED_SKIP
from convkit import functional
from convkit.functional import _pair

pytestmark = COMPILED_SKIP
ops = torch.ops.convkit if hasattr(torch.ops, "convkit") else None

ALGOS = ["auto", "direct", "implicit_gemm", "im2col", "winograd"]
FORCED = ALGOS[1:]
TIGHT = dict(rtol=1e-10, atol=1e-10)


def applies(algo, k, stride, dilation=1, groups=1):
    """Whether `algo` runs this shape on CPU (csrc/cpu/corr2d.cpp check_cpu_algo)."""
    k, stride, dilation = tuple(k), _pair("", stride, minimum=1), _pair("", dilation, minimum=1)
    if algo == "direct":
        return stride[1] == 1
    if algo == "winograd":  # F(4x4, 3x3), or the stride-phase forward (winograd_s2.cpp)
        return (k == (3, 3) and stride == (1, 1)) or (stride == (2, 2) and dilation == (1, 1) and groups == 1
                                                      and 5 <= k[1] <= 8)
    return True


def case_applies(algo, case):
    return applies(algo, case.k, case.stride, case.dilation, case.groups)


# Shapes the shared list does not have, for every algorithm: padding past what Winograd's grad_input takes
# (p > k-1), outputs smaller than one 4x4 tile, widths that are not a multiple of 4, more than 16 channels
# per group (the direct kernels forced beyond their "auto" range), uneven groups, one channel, 1x1 with
# stride or padding (not the pointwise BLAS path).
EXTRA_CASES = [
    ConvCase("pad3", h=5, w=6, padding=3),
    ConvCase("big_asym_pad", h=6, w=5, padding=(0, 3, 4, 1)),
    ConvCase("tiny_no_pad", h=3, w=3),
    ConvCase("tiny_pad1", n=1, h=2, w=2, padding=1),
    ConvCase("wide_rows", n=1, c=5, h=4, w=37, o=3, padding=(1, 0, 2, 2)),
    ConvCase("many_channels", c=20, h=9, w=11, o=40, padding=1),
    ConvCase("many_in_channels", n=1, c=36, h=8, w=9, o=5, padding=(2, 1, 0, 2)),
    ConvCase("groups_uneven", c=6, o=9, h=8, w=7, groups=3, padding=1),
    ConvCase("wino_og_ne_cg", c=6, o=10, h=9, w=10, groups=2, padding=(2, 1, 0, 2)),
    ConvCase("one_channel", n=3, c=1, h=10, w=9, o=1, padding=1),
    ConvCase("1x1_s2", k=(1, 1), h=7, w=8, stride=2),
    ConvCase("1x1_pad1", k=(1, 1), padding=1),
    ConvCase("5x5_s21", h=9, w=8, k=(5, 5), stride=(2, 1), padding=2),
    # depthwise (one input and one output channel per group): forward_depthwise forward and grad_input; a
    # kernel width other than 3 (the generic width), dilation and row stride, rows wider than one register
    # chunk (64 floats) with a tail; a multiplier of 2 (the rows kernel) beside them
    ConvCase("dw_wide_rows", n=2, c=3, h=5, w=70, o=3, groups=3, padding=(1, 2, 0, 1)),
    ConvCase("dw_mult2_5x2", c=2, h=9, w=11, o=4, k=(5, 2), groups=2, padding=(2, 1, 1, 0), dilation=(1, 2)),
    ConvCase("dw_5x2_dil", c=2, h=9, w=11, o=2, k=(5, 2), groups=2, padding=(2, 1, 1, 0), dilation=(1, 2)),
    ConvCase("dw_s21_dil", c=4, h=12, w=19, o=4, k=(3, 4), groups=4, stride=(2, 1), padding=2, dilation=(2, 1)),
    # dilated 3x3 (Winograd: one tiling per dilation phase): phases of unequal size, padding past one phase's
    # reach, a row of tiles wider than one vector (float and double), dilation 3 in one direction only
    ConvCase("dil2_odd", c=3, h=11, w=9, o=4, dilation=2, padding=(2, 1, 0, 3)),
    ConvCase("dil_31_wide", n=1, c=2, h=13, w=140, o=3, dilation=(3, 1), padding=(3, 2, 1, 1)),
    ConvCase("dil_12_pad4", n=1, c=4, h=7, w=10, o=2, dilation=(1, 2), padding=4),
    # > 16 output channels, not 1x1: forced "direct" is the output-channels-as-lanes kernel (direct_oc.cpp);
    # row stride 2, unequal dilation, a 3x5 kernel, no bias
    ConvCase("oc_lanes_s21_dil", n=2, c=3, h=13, w=17, o=20, k=(3, 5), stride=(2, 1), dilation=(2, 3),
             padding=(1, 2, 3, 0), bias=False),
    # stride 2 with kernels 5 to 8 wide: forced "winograd" is the stride-phase forward (winograd_s2.cpp), its
    # backward "auto"'s; 7x7 with 9 output columns (not a multiple of 4), 5x8 with uneven padding, no bias
    ConvCase("s2_7x7", n=2, c=3, h=17, w=19, o=10, k=(7, 7), stride=2, padding=3),
    ConvCase("s2_5x8_asym", n=1, c=2, h=12, w=21, o=9, k=(5, 8), stride=2, padding=(0, 2, 1, 3), bias=False),
]
ALL_CASES = CONV_CASES + EXTRA_CASES
ZERO_PAD_CASES = [c for c in ALL_CASES if c.padding_mode == "zeros"]


def algo_case_params(cases, algos=ALGOS):
    return [pytest.param(a, c, id=f"{a}-{c.id}") for a in algos for c in cases if case_applies(a, c)]


def conv_op_args(case, requires_grad=True, dtype=torch.float64):
    """The op's arguments (without algo) for a zero-padding case (tests/cases.py)."""
    return cases.conv_op_args(case, dtype, requires_grad=requires_grad)


def assert_rel_close(got, ref, rel=1e-4, what=""):
    """got within rel * max|ref| of ref everywhere (the issue's float32 accuracy target)."""
    assert got.shape == ref.shape, what
    if ref.numel() == 0:
        return
    scale = ref.abs().max().item()
    err = (got.double() - ref.double()).abs().max().item()
    assert err <= rel * scale, f"{what}: max abs error {err:.3g} > {rel} * max|ref| = {rel * scale:.3g}"


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


class OpLog(TorchDispatchMode):
    """Records the algo argument of every convkit op call that reaches the dispatcher."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is ops.corr2d.default:
            self.calls.append(("corr2d", args[7] if len(args) > 7 else kwargs.get("algo", "auto")))
        elif func is ops.corr2d_backward.default:
            self.calls.append(("corr2d_backward", args[8] if len(args) > 8 else kwargs.get("algo", "auto")))
        return func(*args, **kwargs)


# --------------------------------------------------------------------------- 1. conformance
@pytest.mark.parametrize("algo,case", algo_case_params(ALL_CASES))
def test_conformance(algo, case):
    # float64 against the oracle, tight
    x, w, b = case.inputs()
    y = convkit.corr2d(x, w, b, backend="compiled", algo=algo, **case.kwargs())
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, case.oracle(x, w, b), **TIGHT)
    # float32 against the float64 oracle of the same (rounded) values: within 1e-4 of max|reference|
    x, w, b = case.inputs(torch.float32)
    y = convkit.corr2d(x, w, b, backend="compiled", algo=algo, **case.kwargs())
    assert y.dtype == torch.float32
    assert_rel_close(y, case.oracle(x.double(), w.double(), b.double() if b is not None else None))


# Realistic layers (N, C, K, H, W, padding, groups): the accuracy target is met where Winograd's transforms
# (entries up to 8 and 1/24) would show: 64 channels, several tiles, asymmetric padding and odd sizes.
LAYERS = {
    "64ch_14x14": (2, 64, 64, 14, 14, 1, 1),
    "64ch_28x28": (2, 64, 64, 28, 28, 1, 1),
    "64ch_13x11_asym": (2, 64, 64, 13, 11, (0, 2, 1, 0), 1),
    "64ch_15x17_groups4": (2, 64, 64, 15, 17, 1, 4),
    "depthwise_32": (2, 32, 32, 20, 20, 1, 32),
}


@functools.lru_cache(maxsize=None)
def layer_data(name):
    """float32 inputs, and the float64 reference output and gradients computed from exactly those values."""
    n, c, k, h, w, p, groups = LAYERS[name]
    x, wt, b = rand(n, c, h, w, seed=1).float(), rand(k, c // groups, 3, 3, seed=2).float(), rand(k, seed=3).float()
    pads = (p,) * 4 if isinstance(p, int) else p
    xd, wd, bd = (t.double().requires_grad_() for t in (x, wt, b))
    ref = F.conv2d(F.pad(xd, (pads[2], pads[3], pads[0], pads[1])), wd, bd, 1, 0, 1, groups)
    gy = rand(*ref.shape, seed=4).float()
    ref_grads = torch.autograd.grad(ref, (xd, wd, bd), gy.double())
    return (x, wt, b, p, groups, gy), ref.detach(), ref_grads


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("algo", ALGOS)
def test_float32_accuracy_realistic_layers(algo, layer):
    (x, wt, b, p, groups, gy), ref, ref_grads = layer_data(layer)
    xg, wg, bg = (t.clone().requires_grad_() for t in (x, wt, b))
    y = convkit.corr2d(xg, wg, bg, 1, p, 1, groups, backend="compiled", algo=algo)
    assert y.dtype == torch.float32
    assert_rel_close(y, ref)
    for got, want in zip(torch.autograd.grad(y, (xg, wg, bg), gy), ref_grads):
        assert got.dtype == torch.float32
        assert_rel_close(got, want)
    with torch.no_grad():  # the eager entry point (no autograd) computes the same
        assert torch.equal(convkit.corr2d(x, wt, b, 1, p, 1, groups, backend="compiled", algo=algo), y)


@pytest.mark.parametrize("algo", ALGOS)
def test_winograd_image_chunks(algo):
    # float64, C = O = 8, 170x170: 43*43 tiles of 36 * 16 values per image, more than half of Winograd's
    # 16 MiB chunk, so each image is its own chunk (three chunks, offsets n0 = 1, 2); the same for its
    # grad_input (C and O swapped).
    x, wt, b = rand(3, 8, 170, 170, seed=5), rand(8, 8, 3, 3, seed=6), rand(8, seed=7)
    for t in (x, wt, b):
        t.requires_grad_()
    y = convkit.corr2d(x, wt, b, 1, 1, backend="compiled", algo=algo)
    ref = F.conv2d(x, wt, b, 1, 1)
    torch.testing.assert_close(y, ref, **TIGHT)
    gy = rand(*ref.shape, seed=8)
    for got, want in zip(torch.autograd.grad(y, (x, wt, b), gy), torch.autograd.grad(ref, (x, wt, b), gy)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-9)


# --------------------------------------------------------------------------- 2. gradients
GRADCHECK_CASES = [
    ConvCase("gc_pad1", n=1, c=2, h=5, w=4, o=2, padding=1),
    ConvCase("gc_asym_groups", n=1, c=4, h=6, w=5, o=4, groups=2, padding=(0, 2, 1, 0)),
    ConvCase("gc_pad3", n=1, c=2, h=4, w=4, o=3, padding=3),  # past k-1: grad_input not by rows / Winograd
    ConvCase("gc_depthwise", n=2, c=3, h=5, w=5, o=3, groups=3, padding=1, bias=False),
    ConvCase("gc_stride2_asym", n=2, c=2, h=5, w=5, o=3, k=(2, 3), stride=2, padding=(0, 1, 1, 0)),
    ConvCase("gc_stride21_dil", n=1, c=4, h=6, w=7, o=2, k=(2, 3), stride=(2, 1), dilation=(1, 2), padding=1,
             groups=2),
    ConvCase("gc_s2_7x7", n=1, c=2, h=9, w=10, o=3, k=(7, 7), stride=2, padding=(2, 1, 3, 0)),
]
GRADGRAD_IDS = ("gc_asym_groups", "gc_stride21_dil")


@pytest.mark.parametrize("algo,case", algo_case_params(GRADCHECK_CASES))
def test_gradcheck(threads, algo, case):
    # the full Jacobian on the smallest case; elsewhere fast mode (random projections u^T J v, which catch
    # any wrong entry with probability 1) keeps the file's runtime down. One thread: hundreds of tiny calls,
    # each fork/join of the thread pool would cost more than the arithmetic (the thread split is tested on
    # every other test).
    torch.set_num_threads(1)
    x, w, b = case.inputs()
    inputs = tuple(t.requires_grad_() for t in (x, w, b) if t is not None)
    f = lambda *t: convkit.corr2d(*t, backend="compiled", algo=algo, **case.kwargs())  # noqa: E731
    assert torch.autograd.gradcheck(f, inputs, fast_mode=case.id != "gc_pad1")
    if case.id in GRADGRAD_IDS:
        assert torch.autograd.gradgradcheck(f, inputs, fast_mode=True)


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algo_has_a_gradgradcheck(algo):
    # the list above gives every algorithm at least one double-backward check
    assert any(case_applies(algo, c) for c in GRADCHECK_CASES if c.id in GRADGRAD_IDS)


def _grads(out, inputs, seed=3):
    gy = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, [t for t in inputs if t is not None], gy)


@pytest.mark.parametrize("algo,case", algo_case_params(ALL_CASES))
def test_grads_match_torch(algo, case):
    x, w, b = case.inputs()
    for t in (x, w, b):
        if t is not None:
            t.requires_grad_()
    got = _grads(convkit.corr2d(x, w, b, backend="compiled", algo=algo, **case.kwargs()), (x, w, b))
    want = _grads(case.oracle(x, w, b), (x, w, b))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, **TIGHT)


@pytest.mark.parametrize("algo", FORCED)
def test_autograd_passes_algo_to_every_op(algo):
    # forward, backward and double backward all run the forced algorithm (register_autograd keeps it)
    case = GRADCHECK_CASES[1]
    x, w, b, *conf = conv_op_args(case)
    with OpLog() as log:
        y = convkit.corr2d(x, w, b, conf[0], conf[1], conf[2], conf[3], backend="compiled", algo=algo)
        gy = torch.ones_like(y).requires_grad_()
        gx, gw, gb = torch.autograd.grad(y, (x, w, b), gy, create_graph=True)
        torch.autograd.grad((gx.square().sum() + gw.square().sum()), (x, w, gy))
    names = [name for name, _ in log.calls]
    assert names.count("corr2d") >= 2 and names.count("corr2d_backward") >= 2, log.calls
    assert all(a == algo for _, a in log.calls), log.calls


_TILE_SPLIT_SCRIPT = r"""
import torch, torch.nn.functional as F, convkit
for threads in (2, 3):
    torch.set_num_threads(threads)
    for dtype in (torch.float32, torch.float64):
        for o in (40, 72, 144):
            for algo in ("implicit_gemm", "auto"):
                print(f"grad_weight: x (2, 3, 8, 8) w ({o}, 3, 3, 3) {dtype} algo={algo} threads={threads}",
                      flush=True)
                g = torch.Generator().manual_seed(o)
                x = torch.randn(2, 3, 8, 8, generator=g, dtype=dtype)
                w = torch.randn(o, 3, 3, 3, generator=g, dtype=dtype, requires_grad=True)
                y = convkit.corr2d(x, w, None, 1, 1, backend="compiled", algo=algo)
                (gw,) = torch.autograd.grad(y, w, torch.ones_like(y))
                (ref,) = torch.autograd.grad(F.conv2d(x, w, None, 1, 1), w, torch.ones_like(y))
                torch.testing.assert_close(gw, ref, rtol=1e-4, atol=1e-3)
print("all ok")
"""


def test_grad_weight_output_tile_split_in_a_subprocess():
    # grad_weight's tiled kernel (implicit_gemm; auto beyond 64 output channels, or 16 with stride != 1) with
    # fewer rows K = Cg*kh*kw (27 here) than output channels splits the work over tiles of two vectors of
    # output channels (8: float64 on AVX2; 16: float32 on AVX2 or float64 on AVX-512; 32: float32 on AVX-512).
    # 40, 72 and 144 channels make 5 such tiles, which 2 threads split four ways (2 tiles a task): the last
    # task starts past the last tile. Run in a subprocess: a crash there fails this test instead of killing
    # the test run.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-c", _TILE_SPLIT_SCRIPT], capture_output=True, text=True, timeout=300,
                       cwd=root)
    last = r.stdout.strip().splitlines()[-1:] or ["(nothing)"]
    assert r.returncode == 0 and "all ok" in r.stdout, \
        f"exit status {r.returncode} at: {last[0]}\n{r.stderr[-2000:]}"


# --------------------------------------------------------------------------- 3. opcheck
# the full opcheck (with the AOT dispatch test): two cases per algorithm, the first also for the backward op
OPCHECK_IDS = {"auto": ("stride21_pad10", "groups2"), "direct": ("asym_pad", "stride21_pad10"),
               "implicit_gemm": ("dilation_12", "groups2"), "im2col": ("dilation_12", "asym_pad"),
               "winograd": ("groups2", "asym_pad")}
CASES_BY_ID = {c.id: c for c in ZERO_PAD_CASES}


def _first_two(algo):
    cases = [CASES_BY_ID[i] for i in OPCHECK_IDS[algo]]
    assert all(case_applies(algo, c) for c in cases)
    return cases


@pytest.mark.parametrize("algo,case", [pytest.param(a, c, id=f"{a}-{c.id}") for a in ALGOS for c in _first_two(a)])
def test_opcheck_corr2d(algo, case):
    torch.library.opcheck(ops.corr2d.default, (*conv_op_args(case), algo))


# the cheap parts of opcheck (all but the AOT dispatch, which costs ~0.5 s a call) on more cases
CHEAP_OPCHECK = ("test_schema", "test_autograd_registration", "test_faketensor")


@pytest.mark.parametrize("algo,case", algo_case_params(
    [c for c in ZERO_PAD_CASES if c.id in ("dilation2", "depthwise", "no_bias", "batch0", "channels_last",
                                            "same_s2", "big_asym_pad", "s2_7x7")]))
def test_opcheck_cheap_parts(algo, case):
    x, w, b, *conf = conv_op_args(case)
    torch.library.opcheck(ops.corr2d.default, (x, w, b, *conf, algo), test_utils=CHEAP_OPCHECK)
    gy = torch.randn_like(ops.corr2d(x, w, b, *conf, algo)).requires_grad_()
    torch.library.opcheck(ops.corr2d_backward.default, (gy, x, w, *conf, [True, True, b is not None], algo),
                          test_utils=CHEAP_OPCHECK)


@pytest.mark.parametrize("algo,case,mask", [
    pytest.param(a, c, m, id=f"{a}-{c.id}-{''.join('1' if v else '0' for v in m)}")
    for i, a in enumerate(ALGOS) for c in _first_two(a)[:1]
    for m in ([True, True, True], [[True, False, False], [False, True, True], [True, True, False]][i % 3])])
def test_opcheck_corr2d_backward(algo, case, mask):
    x, w, b, *conf = conv_op_args(case)
    gy = torch.randn_like(ops.corr2d(x, w, b, *conf, algo)).requires_grad_()
    # the AOT dispatch test (the slow part) with the full mask; the partial masks without it
    utils = None if all(mask) else CHEAP_OPCHECK
    torch.library.opcheck(ops.corr2d_backward.default, (gy, x, w, *conf, mask, algo),
                          **({} if utils is None else dict(test_utils=utils)))


# --------------------------------------------------------------------------- 4. torch.compile
class TwoConvs(torch.nn.Module):
    def __init__(self, algo):
        super().__init__()
        self.c1 = convkit.nn.Conv2d(3, 8, 3, padding=1, backend="compiled", algo=algo)
        self.c2 = convkit.nn.Conv2d(8, 8, 3, padding=(0, 2, 1, 0), groups=2, backend="compiled", algo=algo)
        self.fc = torch.nn.Linear(8 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(self.c2(torch.tanh(self.c1(x))).flatten(1))


@pytest.mark.parametrize("algo", ALGOS)
def test_torch_compile_fullgraph_matches_eager(algo):
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def keep(gm, example_inputs):
        graphs.append(gm)
        return make_boxed_func(gm.forward)

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = TwoConvs(algo).double()
    x = torch.randn(2, 3, 8, 9, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(model, fullgraph=True, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep))
    params = [x, *model.parameters()]
    out_c = compiled(x)
    grads_c = torch.autograd.grad(out_c.square().sum(), params)
    out_e = model(x)
    grads_e = torch.autograd.grad(out_e.square().sum(), params)
    torch.testing.assert_close(out_c, out_e)
    for a, b in zip(grads_c, grads_e):
        torch.testing.assert_close(a, b)
    # the traced forward and backward graphs call the ops with the algorithm
    nodes = [n for gm in graphs for n in gm.graph.nodes if n.op == "call_function"]
    fwd = [n for n in nodes if n.target is ops.corr2d.default]
    bwd = [n for n in nodes if n.target is ops.corr2d_backward.default]
    assert len(fwd) == 2 and len(bwd) == 2
    for n in fwd:
        assert (n.args[7] if len(n.args) > 7 else n.kwargs.get("algo", "auto")) == algo
    for n in bwd:
        assert (n.args[8] if len(n.args) > 8 else n.kwargs.get("algo", "auto")) == algo
    torch._dynamo.reset()


def test_torch_compile_inductor_every_algo_in_one_model():
    # one inductor compile (they are slow on 2 cores) of a model with a layer per algorithm
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        convkit.nn.Conv2d(2, 4, 3, padding=1, backend="compiled", algo="direct"), torch.nn.ReLU(),
        convkit.nn.Conv2d(4, 8, 3, padding=1, backend="compiled", algo="winograd"), torch.nn.ReLU(),
        convkit.nn.Conv2d(8, 8, 3, stride=2, padding=1, backend="compiled", algo="implicit_gemm"),
        convkit.nn.Conv2d(8, 6, (2, 3), stride=(2, 1), backend="compiled", algo="im2col"),
        convkit.nn.Conv2d(6, 4, 3, padding="same", backend="compiled", algo="auto"))
    x = torch.randn(2, 2, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(x), model(x))
    torch._dynamo.reset()


# --------------------------------------------------------------------------- 5. thread determinism
# (N, C, O, H, W, k, stride, padding, groups): big enough that every kernel splits its work between threads.
THREAD_SHAPES = [
    (3, 24, 32, 23, 19, 3, 1, 1, 1),          # Winograd's chosen range; > 16 channels: tiled kernels
    (8, 32, 40, 28, 26, 3, 1, 1, 1),          # >= 8 images of 49 tiles: Winograd one image per work item (not chunked)
    (2, 8, 12, 21, 22, 3, 1, (0, 2, 1, 0), 2),  # few channels: rows and lanes kernels
    (2, 16, 20, 17, 18, 3, (2, 1), 1, 1),
    (2, 8, 16, 15, 16, 3, 2, (1, 0, 2, 1), 2),
    (2, 12, 12, 14, 13, 3, 1, 1, 12),         # depthwise
    (4, 12, 80, 9, 11, 1, 1, 0, 2),           # 1x1, > 32 channels per group on 8 images x groups: BLAS
    (2, 64, 144, 6, 7, 3, 1, 1, 1),           # K = 576, 144 output channels, 84 positions: column-block BLAS
    (1, 128, 300, 5, 5, 3, 1, 1, 2),          # the same per group (150 channels: an uneven channel block)
    (3, 3, 40, 112, 112, 7, 2, 3, 1),         # stem-like, 9408 positions for K = 147: grad_weight's position slabs
    (2, 8, 48, 48, 48, 3, 1, 1, 2),           # the same per group (K = 36, 4608 positions)
    (1, 40, 70, 30, 30, 1, 1, 0, 1),          # 1x1 on 900 positions: the pointwise kernel (57 vectors: one run at 1 thread, 28 + 29 at 2)
    (3, 64, 128, 40, 40, 3, 2, 1, 1),         # K = 576, 128 channels, 1200 positions: per-image BLAS blocks
    (4, 1024, 64, 7, 7, 1, 1, 0, 1),          # 1x1 BLAS forward reducing over 1024 channels in one product
    (4, 64, 1024, 7, 7, 1, 1, 0, 1),          # 1x1 BLAS grad_input reducing over 1024 channels
]


def _run_threads(algo, shape, nthreads):
    n, c, o, h, w, k, stride, padding, groups = shape
    x = rand(n, c, h, w, seed=11, dtype=torch.float32).requires_grad_()
    wt = rand(o, c // groups, k, k, seed=12, dtype=torch.float32).requires_grad_()
    b = rand(o, seed=13, dtype=torch.float32).requires_grad_()
    torch.set_num_threads(nthreads)
    y = convkit.corr2d(x, wt, b, stride, padding, 1, groups, backend="compiled", algo=algo)
    grads = torch.autograd.grad(y, (x, wt, b), rand(*y.shape, seed=14, dtype=torch.float32))
    with torch.no_grad():
        y_infer = convkit.corr2d(x, wt, b, stride, padding, 1, groups, backend="compiled", algo=algo)
    return (y, *grads, y_infer)


def _thread_params(algos):
    return [pytest.param(a, s, id=f"{a}-{i}") for a in algos for i, s in enumerate(THREAD_SHAPES)
            if applies(a, (s[5], s[5]), s[6])]


@pytest.mark.parametrize("algo,shape", _thread_params(["auto", "direct", "implicit_gemm", "winograd"]))
def test_thread_counts_give_identical_results(threads, algo, shape):
    one, two = _run_threads(algo, shape, 1), _run_threads(algo, shape, 2)
    for name, r1, r2 in zip(("output", "grad_input", "grad_weight", "grad_bias", "eager output"), one, two):
        assert torch.equal(r1, r2), f"{name} differs between 1 and 2 threads"


@pytest.mark.usefixtures("blas_prefer")
@pytest.mark.parametrize("shape", [THREAD_SHAPES[i] for i in (1, 6, 7, 8, 12, 13, 14)])
def test_thread_counts_give_identical_results_through_blas(threads, shape):
    # the rows above that "auto" sends to BLAS where BLAS is fast (Winograd's grad_weight products, the
    # column-block, per-image and 1x1 products; addmm_runs keeps those reductions fixed)
    n, c, o, h, w, k, stride, padding, groups = shape
    plan = convkit.explain((n, c, h, w), (o, c // groups, k, k), stride=stride, padding=padding,
                           groups=groups).backends["compiled"]
    assert any("BLAS" in plan[d] for d in ("forward", "grad_input", "grad_weight")), plan
    one, two = _run_threads("auto", shape, 1), _run_threads("auto", shape, 2)
    for name, r1, r2 in zip(("output", "grad_input", "grad_weight", "grad_bias", "eager output"), one, two):
        assert torch.equal(r1, r2), f"{name} differs between 1 and 2 threads"


# depthwise 3x3 at stride 1 and row dilation 1: blocks of 4 output rows x 2 vectors (depthwise3_rows), the
# forward and grad_input (its transpose is depthwise too); heights that leave 1-3 rows, widths that leave
# part of a vector, column dilation.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,h,w,pad,dil", [
    (2, 5, 7, 33, 1, 1), (1, 3, 13, 17, (1, 2), (1, 2)), (1, 2, 4, 112, 1, 1), (1, 4, 1, 5, 1, 1),
    (3, 2, 10, 64, 0, 1), (1, 3, 6, 40, (2, 0), (1, 3)),
])
def test_depthwise_3x3_row_blocks(dtype, n, c, h, w, pad, dil):
    x, wt, b = rand(n, c, h, w, seed=31, dtype=dtype), rand(c, 1, 3, 3, seed=32, dtype=dtype), rand(c, seed=33, dtype=dtype)
    two = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    pad2, dil2 = two(pad), two(dil)
    args = ([1, 1], [pad2[0], pad2[0], pad2[1], pad2[1]], list(dil2), c)
    assert "depthwise" in convkit.explain((n, c, h, w), (c, 1, 3, 3), padding=pad, dilation=dil, groups=c,
                                          dtype=dtype).backends["compiled"]["forward"]
    out = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        y = ops.corr2d(x, wt, b, *args, "auto")
        gy = rand(*y.shape, seed=34, dtype=dtype)
        out[threads] = (y, ops.corr2d_backward(gy, x, wt, *args, [True, False, False], "auto")[0])
    torch.set_num_threads(2)
    xd = x.double().requires_grad_()
    ref = F.conv2d(xd, wt.double(), b.double(), 1, pad2, dil2, c)
    (ref_gx,) = torch.autograd.grad(ref, (xd,), gy.double())
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for got, want in zip(out[2], (ref, ref_gx)):
        assert_rel_close(got, want, tol)
    assert all(torch.equal(a, b) for a, b in zip(out[1], out[2]))


@pytest.mark.parametrize("algo,shape", _thread_params(["im2col"]))
def test_thread_counts_im2col_close(threads, algo, shape):
    # im2col is the textbook path on ATen's im2col/col2im and BLAS matmul: BLAS may block its reductions
    # differently per thread count, so it is not bitwise deterministic by design; only close.
    one, two = _run_threads(algo, shape, 1), _run_threads(algo, shape, 2)
    for r1, r2 in zip(one, two):
        torch.testing.assert_close(r1, r2, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- the 1x1 pointwise kernel
# forward_pointwise_rows (csrc/cpu/corr2d.cpp): 6 rows x 4 vectors (64 fp32 / 32 fp64 positions) per register
# tile, or 8 rows x 3 vectors where that pads the rows less (8, 16, 64, 256 rows...); x and W read in place, a
# plane's last partial tile (1-3 vectors, or a part of one) through a padded copy; each thread's run of
# vectors ends in a partial tile; the forward (W x) and, transposed, grad_input (W^T dY). Positions around
# the tile and vector widths, row counts that are not a multiple of 6 or 8, groups, runs of several tiles
# (the prefetch of the next tile).
# algo="direct" also takes grad_weight through pointwise_grad_weight_direct: 6 x 4 channel tiles (counts that
# are not multiples of 6 and 4 repeat the last row), positions in chunks of 512 (900: a partial last chunk),
# the last partial vector in scalar (15, 17, 63, 65, 130, 900 positions). Outputs larger than the threads' L2
# are written with non-temporal stores where a row is 64-byte aligned (the last three cases).
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n,c,o,h,w,groups", [
    (2, 5, 7, 1, 1, 1),       # one position
    (1, 9, 13, 3, 5, 1),      # 15 positions: part of one vector
    (2, 6, 6, 4, 4, 2),       # 16: one fp32 vector, two fp64 vectors
    (1, 12, 18, 1, 17, 3),    # 17
    (2, 7, 11, 7, 9, 1),      # 63
    (1, 8, 6, 8, 8, 1),       # 64: one whole fp32 tile, two fp64 tiles
    (1, 7, 5, 5, 13, 1),      # 65
    (1, 7, 9, 5, 8, 1),       # 40: three fp32 vectors, the last one partial
    (1, 10, 25, 13, 10, 5),   # 130, 2 channels per group in, 5 out
    (1, 40, 70, 30, 30, 1),   # 900: runs of several tiles
    (2, 16, 40, 28, 28, 2),   # 784, the smallest plane auto gives this kernel
    # outputs beyond the threads' L2 (threads x 1 MiB) take non-temporal stores (vstore_stream), aligned rows only
    (2, 24, 200, 40, 40, 1),  # 2.6 MB fp32 output, every plane 64-byte aligned
    (2, 20, 150, 45, 45, 1),  # 2025 positions: planes at every alignment, partial last tiles stored plainly
    (2, 200, 24, 40, 40, 1),  # grad_input (W^T dY) writes the large tensor
    # 8 x 3 tiles: 16 / 64 rows (the forward), 8 / 12 rows transposed (grad_input), 48 fp32 positions a tile
    (1, 8, 16, 7, 7, 1),      # 49: one tile and one position
    (2, 24, 64, 9, 11, 2),    # 99, 32 rows per group both ways
    (1, 64, 256, 28, 29, 1),  # R4's channels on 812 positions
])
def test_pointwise_kernel_forward_and_grad_input(dtype, n, c, o, h, w, groups):
    x = rand(n, c, h, w, seed=41, dtype=dtype).requires_grad_()
    wt = rand(o, c // groups, 1, 1, seed=42, dtype=dtype).requires_grad_()
    b = rand(o, seed=43, dtype=dtype).requires_grad_()
    y = convkit.corr2d(x, wt, b, groups=groups, backend="compiled", algo="direct")
    gy = rand(*y.shape, seed=44, dtype=dtype)
    gx, gw, gb = torch.autograd.grad(y, (x, wt, b), gy)
    xd, wd, bd = (t.detach().double().requires_grad_() for t in (x, wt, b))
    ref = F.conv2d(xd, wd, bd, groups=groups)
    rgx, rgw, rgb = torch.autograd.grad(ref, (xd, wd, bd), gy.double())
    rel = 1e-12 if dtype == torch.float64 else 1e-5
    for name, got, want in (("output", y, ref), ("grad_input", gx, rgx), ("grad_weight", gw, rgw),
                            ("grad_bias", gb, rgb)):
        assert_rel_close(got, want, rel, name)
    if h * w >= 784:  # auto takes the same kernels here (<= 128 reduction channels): bitwise the same
        ya = convkit.corr2d(x, wt, b, groups=groups, backend="compiled")
        assert torch.equal(ya, y)
        for name, got, want in zip(("grad_input", "grad_weight", "grad_bias"),
                                   torch.autograd.grad(ya, (x, wt, b), gy), (gx, gw, gb)):
            assert torch.equal(got, want), name


@pytest.mark.usefixtures("threads")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,o,h,w", [(1, 64, 256, 56, 56), (3, 20, 30, 13, 17), (1, 16, 64, 29, 30)])
def test_pointwise_kernel_same_bits_at_any_thread_count(dtype, n, c, o, h, w):
    # each thread owns one run of (image, vector) positions, cut at vectors: where the cut falls changes
    # which tile (and which register tile shape) computes a position, never its summation order
    x, wt, b = (rand(*s, seed=45 + i, dtype=dtype) for i, s in enumerate(((n, c, h, w), (o, c, 1, 1), (o,))))
    gy = rand(n, o, h, w, seed=48, dtype=dtype)
    args = ([1, 1], [0, 0, 0, 0], [1, 1], 1)
    outs = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        outs.append((ops.corr2d(x, wt, b, *args, "direct"),
                     ops.corr2d_backward(gy, x, wt, *args, [True, False, False], "direct")[0]))
    assert_rel_close(outs[0][0], F.conv2d(x.double(), wt.double(), b.double()), 1e-5, "output")
    assert_rel_close(outs[0][1], torch.nn.grad.conv2d_input(x.shape, wt.double(), gy.double()), 1e-5, "grad_input")
    for y, gx in outs[1:]:
        assert torch.equal(y, outs[0][0]) and torch.equal(gx, outs[0][1])


@pytest.mark.usefixtures("blas_prefer")
def test_pointwise_kernel_is_what_auto_explains():
    def steps(shape, weight):
        return convkit.explain(shape, weight).backends["compiled"]
    r2 = steps((8, 64, 56, 56), (64, 64, 1, 1))
    assert "forward_pointwise_rows" in r2["forward"] and "forward_pointwise_rows" in r2["grad_input"]
    # R4 at N=8: grad_input reduces over 256 output channels on 8 images: per-image BLAS
    r4 = steps((8, 64, 56, 56), (256, 64, 1, 1))
    assert "forward_pointwise_rows" in r4["forward"] and "BLAS" in r4["grad_input"]
    assert "BLAS" in steps((8, 256, 14, 14), (1024, 256, 1, 1))["forward"]  # 196 positions
    # grad_weight: the channel-tile kernel from 784 positions while its accumulators fit 2 MiB
    assert "pointwise_grad_weight_direct" in r2["grad_weight"] and "pointwise_grad_weight_direct" in r4["grad_weight"]
    assert "BLAS" in steps((8, 64, 16, 16), (64, 64, 1, 1))["grad_weight"]       # 256 positions
    assert "BLAS" in steps((8, 128, 28, 28), (512, 128, 1, 1))["grad_weight"]    # 86 x 32 tiles: 4.2 MB


# forward_images_blas: auto's forward for >= 512 rows of k and >= 128 output channels per group beyond the
# column-block regime's 1024 positions (R6 at N=8), on >= 2 images x groups; K split into blocks of rows
# (the last one shorter), bias or none, groups.
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n,c,o,h,groups,bias", [
    (2, 64, 128, 48, 1, True),     # K = 576, 2 x 576 positions
    (3, 70, 130, 40, 1, False),    # K = 630: uneven blocks, no bias
    (1, 128, 256, 72, 2, True),    # one image, 2 groups: K = 576, 128 channels per group, 1296 positions
])
@pytest.mark.usefixtures("blas_prefer")
def test_images_blas_forward(dtype, n, c, o, h, groups, bias):
    shape, wshape = (n, c, h, h), (o, c // groups, 3, 3)
    assert "forward_images_blas" in convkit.explain(shape, wshape, stride=2, padding=1, groups=groups,
                                                    dtype=dtype).backends["compiled"]["forward"]
    x, wt = rand(*shape, seed=51, dtype=dtype), rand(*wshape, seed=52, dtype=dtype)
    b = rand(o, seed=53, dtype=dtype) if bias else None
    y = convkit.corr2d(x, wt, b, 2, 1, 1, groups, backend="compiled")
    ref = F.conv2d(x.double(), wt.double(), None if b is None else b.double(), 2, 1, 1, groups)
    assert_rel_close(y, ref, 1e-12 if dtype == torch.float64 else 1e-5)


# --------------------------------------------------------------------------- 6. "auto" equals its chosen path
def winograd_rule(n, cg, og, ho, wo, dilation=1):
    """auto's Winograd rule for the forward (csrc/cpu/winograd.cpp winograd_preferred; 3x3, stride 1): 4x4
    tiles over each of the dilation's phases that have outputs, at least half of their outputs real."""
    def cdiv(a, b):
        return -(-a // b)
    tiles_per_image = min(dilation, ho) * min(dilation, wo) * cdiv(cdiv(ho, dilation), 4) * cdiv(cdiv(wo, dilation), 4)
    tiles = n * tiles_per_image
    return (2 * ho * wo >= 16 * tiles_per_image and cg >= 32 and og >= 32 and tiles_per_image >= 49
            and (tiles >= 98 or og * cg >= 128 * 128))


@pytest.mark.parametrize("shape", [
    # (N, C, O, H, W, padding, groups, expected choice)
    (2, 32, 32, 28, 28, 1, 1, "winograd"),         # 49 tiles per image, two images, 32 channels per group both ways
    (1, 32, 32, 28, 28, 1, 1, "direct"),           # one such image and few weights; <= 32 output channels: rows
    (1, 128, 128, 28, 28, 1, 1, "winograd"),       # one image with 128 x 128 weights (R8 at N=1)
    (8, 32, 40, 16, 16, 1, 1, "direct"),           # 128 tiles, but 16 per image (R9's kind)
    (2, 64, 64, 32, 32, 1, 2, "winograd"),         # 32 per group
    (2, 40, 48, 28, 27, (0, 2, 1, 0), 1, "winograd"),
    (2, 16, 16, 32, 32, 1, 1, "direct"),           # 16 channels: the direct kernels beat Winograd (X2)
    (2, 31, 32, 16, 16, 1, 1, "direct"),           # 31 input channels; <= 32 output channels: rows
    (2, 32, 31, 16, 16, 1, 1, "direct"),           # 31 output channels
    (2, 16, 16, 16, 12, 1, 1, "direct"),           # 24 tiles
    (1, 40, 40, 20, 20, 1, 1, "direct"),           # 25 tiles; <= 64 output channels (not 1x1): rows
    (1, 40, 72, 20, 20, 1, 1, "implicit_gemm"),    # > 64 output channels: tiled
    (2, 16, 32, 16, 16, 1, 4, "direct"),           # 4 input channels per group
    (1, 32, 80, 12, 12, 1, 1, "implicit_gemm"),    # 9 tiles
])
@pytest.mark.usefixtures("blas_prefer")
def test_auto_forward_equals_its_chosen_algorithm(shape):
    n, c, o, h, w, p, groups, expected = shape
    pads = (p,) * 4 if isinstance(p, int) else p
    assert winograd_rule(n, c // groups, o // groups, h + pads[0] + pads[1] - 2,
                         w + pads[2] + pads[3] - 2) == (expected == "winograd")
    x = rand(n, c, h, w, seed=21, dtype=torch.float32)
    wt = rand(o, c // groups, 3, 3, seed=22, dtype=torch.float32)
    b = rand(o, seed=23, dtype=torch.float32)
    ys = {a: ops.corr2d(x, wt, b, [1, 1], list(pads), [1, 1], groups, a) for a in ALGOS}
    assert torch.equal(ys["auto"], ys[expected])
    # the comparison can tell the paths apart: Winograd rounds differently from the direct kernels
    other = "direct" if expected == "winograd" else "winograd"
    assert not torch.equal(ys[expected], ys[other])
    with torch.no_grad():  # the public API and the eager entry point choose the same
        assert torch.equal(convkit.corr2d(x, wt, b, 1, p, 1, groups, backend="compiled"), ys[expected])


def test_auto_takes_channel_lanes_on_a_g1_like_layer():
    # beyond 16 output channels per group, 5x5 (G1's kind, >= 4 M multiply-adds): auto's forward is the
    # output-channels-as-lanes kernel (direct_oc.cpp), which forced "direct" also takes; bitwise equal, and
    # within the float32 accuracy target, with 40 channels (2 x 14 tiles in two blocks: the second has 8
    # channels, a partial first vector and no second) and 2 groups of 18 (a partial second vector)
    x = rand(2, 48, 20, 23, seed=71, dtype=torch.float32)
    for o, groups in ((40, 1), (36, 2)):
        wt = rand(o, 48 // groups, 5, 5, seed=72, dtype=torch.float32)
        b = rand(o, seed=73, dtype=torch.float32)
        assert 2 * o * (48 // groups) * 25 * 20 * 23 >= 4 << 20
        # (forward_tiled sums in the same order, so only explain, below, tells the paths apart)
        ys = {a: ops.corr2d(x, wt, b, [1, 1], [2, 2, 2, 2], [1, 1], groups, a) for a in ("auto", "direct")}
        assert torch.equal(ys["auto"], ys["direct"])
        assert_rel_close(ys["auto"], F.conv2d(x.double(), wt.double(), b.double(), 1, 2, 1, groups))
        assert "forward: direct, output channels as vector lanes" in str(
            convkit.explain(x.shape, wt.shape, padding=2, groups=groups))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_auto_takes_channel_lanes_for_column_stride_2(dtype, threads):
    # column stride 2 beyond 16 output channels per group and 4 M multiply-adds, where no BLAS path applies
    # (the ResNet stem R1, D1): auto's forward is the channel-lanes kernel with every other column broadcast
    # (forward_oc<..., SW = 2>); with AVX-512, fp32 stores its tiles through the in-register 16 x 16
    # transpose (store_lanes_transposed), fp64 through the scalar loop. Against float64 F.conv2d, and bitwise the same
    # at 1 and 2 threads. Cases: an R1-like stem (7x7, 3 -> 64, a 9-column tail tile), row stride 1 with 2
    # groups of 20 channels, dilation and asymmetric padding, and D1's kind (one input channel, 5x20).
    cases = [  # n, c, o, h, w, k, stride, padding (t, b, l, r), dilation, groups
        (1, 3, 64, 40, 45, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
        (2, 16, 40, 33, 60, (5, 3), (1, 2), (1, 3, 0, 2), (2, 1), 2),
        (2, 1, 32, 41, 120, (5, 20), (2, 2), (0, 0, 0, 0), (1, 1), 1),
        (2, 16, 40, 40, 64, (3, 5), (2, 2), (1, 1, 4, 4), (1, 2), 1),  # column dilation; a block of 8 channels
    ]
    for n, c, o, h, w, k, stride, pad, dil, groups in cases:
        x = rand(n, c, h, w, seed=91, dtype=dtype)
        wt = rand(o, c // groups, *k, seed=92, dtype=dtype)
        b = rand(o, seed=93, dtype=dtype)
        ref = F.conv2d(F.pad(x.double(), (pad[2], pad[3], pad[0], pad[1])), wt.double(), b.double(), stride, 0,
                       dil, groups)
        ho, wo = ref.shape[2:]
        assert n * o * (c // groups) * k[0] * k[1] * ho * wo >= 4 << 20
        text = str(convkit.explain(x.shape, wt.shape, stride=stride, padding=pad, dilation=dil, groups=groups))
        assert "forward: direct, output channels as vector lanes" in text, text
        ys = []
        for nt in (1, 2):
            torch.set_num_threads(nt)
            ys.append(ops.corr2d(x, wt, b, list(stride), list(pad), list(dil), groups, "auto"))
        assert torch.equal(ys[0], ys[1])
        assert_rel_close(ys[0], ref, 1e-12 if dtype == torch.float64 else 1e-5)
        # the path this replaced (forward_tiled) agrees within rounding
        assert_rel_close(ops.corr2d(x, wt, b, list(stride), list(pad), list(dil), groups, "implicit_gemm"), ref,
                         1e-12 if dtype == torch.float64 else 1e-5)
    if dtype == torch.float64:
        torch.library.opcheck(ops.corr2d.default, (x, wt, b, list(stride), list(pad), list(dil), groups, "auto"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_channel_lanes_one_vector(dtype, threads):
    # 3/4 to one vector of output channels per group (fp32: 12-16, fp64: 6-8), column stride 1, not 1x1: "auto"
    # and "direct" take the channel-lanes forward with a 1 x NP tile (direct_oc.cpp fwd_tile; NP = 8 .. 16, the
    # row split evenly: L2's Wo = 10 is one tile of 10). Tiles of 8, 10, 12, 14 and 16 columns, a partial last
    # tile, row stride 2, dilation, asymmetric padding, groups, no bias. Against float64 F.conv2d, bitwise the
    # same at 1 and 2 threads and with "direct", and the rows kernel's summation order: bitwise equal to it
    # where the rule is off (a vector of channels less than 3/4 full goes to the rows kernel, checked below).
    lanes = 16 if dtype == torch.float32 else 8
    cases = [  # n, c, o, h, w, k, stride, padding (t, b, l, r), dilation, groups, bias
        (8, 6, lanes, 14, 14, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),         # L2: one tile of 10
        (2, 5, lanes, 9, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),           # Wo = 8
        (1, 3, lanes - 1, 12, 12, (3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 1, False),    # 12, row stride 2
        (2, 8, 2 * lanes, 11, 28, (3, 3), (1, 1), (2, 0, 1, 1), (2, 1), 2, True),     # 14 x 2, 2 groups
        (1, 4, 3 * lanes // 4, 7, 33, (2, 4), (1, 1), (0, 1, 3, 0), (1, 2), 1, True),  # Wo = 30: 16 + 14
    ]
    for n, c, o, h, w, k, stride, pad, dil, groups, bias in cases:
        x = rand(n, c, h, w, seed=111, dtype=dtype)
        wt = rand(o, c // groups, *k, seed=112, dtype=dtype)
        b = rand(o, seed=113, dtype=dtype) if bias else None
        ref = F.conv2d(F.pad(x.double(), (pad[2], pad[3], pad[0], pad[1])), wt.double(),
                       b.double() if bias else None, stride, 0, dil, groups)
        text = str(convkit.explain(x.shape, wt.shape, stride=stride, padding=pad, dilation=dil, groups=groups,
                                   dtype=dtype))
        assert "forward: direct, output channels as vector lanes" in text, text
        ys = {}
        for nt in (1, 2):
            torch.set_num_threads(nt)
            for a in ("auto", "direct"):
                ys[a, nt] = ops.corr2d(x, wt, b, list(stride), list(pad), list(dil), groups, a)
        assert_rel_close(ys["auto", 1], ref, 1e-12 if dtype == torch.float64 else 1e-5)
        assert all(torch.equal(y, ys["auto", 1]) for y in ys.values())
    x = rand(2, 4, 10, 10, seed=114, dtype=dtype)  # half a vector of channels: the rows kernel
    text = str(convkit.explain(x.shape, (lanes // 2, 4, 3, 3), padding=1, dtype=dtype))
    assert "forward: direct rows (forward_rows)" in text, text
    if dtype == torch.float64:
        x = rand(2, 3, 7, 9, seed=115).requires_grad_()
        wt = rand(8, 3, 3, 3, seed=116).requires_grad_()
        b = rand(8, seed=117).requires_grad_()
        torch.library.opcheck(ops.corr2d.default, (x, wt, b, [1, 1], [1, 1, 1, 1], [1, 1], 1, "auto"))
        assert torch.autograd.gradcheck(lambda x, wt, b: convkit.corr2d(x, wt, b, 1, 1, backend="compiled"),
                                        (x, wt, b))


def grad_case(n, c, o, h, w, k, stride, pad, dil, groups, dtype, seed):
    """x, w, dY in `dtype` and the float64 reference grad_input and grad_weight (torch, padding applied
    explicitly)."""
    x = rand(n, c, h, w, seed=seed, dtype=dtype)
    wt = rand(o, c // groups, *k, seed=seed + 1, dtype=dtype)
    xp = F.pad(x.double(), (pad[2], pad[3], pad[0], pad[1])).requires_grad_()
    wd = wt.double().requires_grad_()
    ref_y = F.conv2d(xp, wd, None, stride, 0, dil, groups)
    gy = rand(*ref_y.shape, seed=seed + 2, dtype=dtype)
    ref_gxp, ref_gw = torch.autograd.grad(ref_y, (xp, wd), gy.double())
    return x, wt, gy, ref_gxp[:, :, pad[0]:pad[0] + h, pad[2]:pad[2] + w], ref_gw


def check_gradient_path(case, dtype, which, expect, seed, algos=("auto", "direct")):
    """One gradient of `case` (n, c, o, h, w, k, stride, padding, dilation, groups; which: 0 grad_input, 1
    grad_weight) through the path whose explain line contains `expect`: against the float64 reference, and
    bitwise the same for every algo in `algos` at 1 and 2 threads."""
    n, c, o, h, w, k, stride, pad, dil, groups = case
    x, wt, gy, ref_gx, ref_gw = grad_case(*case, dtype, seed=seed)
    text = str(convkit.explain(x.shape, wt.shape, stride=stride, padding=tuple(pad), dilation=dil, groups=groups,
                               dtype=dtype))
    assert expect in text, text
    got = {}
    for nthreads in (1, 2):
        torch.set_num_threads(nthreads)
        for a in algos:
            got[a, nthreads] = ops.corr2d_backward(gy, x, wt, list(stride), list(pad), list(dil), groups,
                                                   [which == 0, which == 1, False], a)[which]
    assert_rel_close(got["auto", 1], ref_gw if which else ref_gx, 1e-12 if dtype == torch.float64 else 1e-5)
    assert all(torch.equal(g, got["auto", 1]) for g in got.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_auto_grad_input_takes_channel_lanes_of_the_flipped_weights(dtype, threads):
    # stride 1 with > 16 input channels per group and <= 64 output channels (G1's backward), or 3/4 to one
    # vector of input channels per group (fp32: 12-16, X2's kind; the 1 x NP tile): grad_input is the
    # channel-lanes forward of the flipped, transposed weights on dY (grad_input_rows, GradInput::OcLanes).
    # "auto" equals forced "direct" and 1 thread equals 2 bitwise, against the float64 reference; asymmetric
    # padding, groups, dilation.
    lanes = 16 if dtype == torch.float32 else 8
    cases = [  # c, o, k, padding, dilation, groups
        (40, 24, (5, 3), (2, 2, 2, 2), (1, 1), 1),
        (40, 24, (5, 3), (1, 3, 0, 2), (1, 1), 2),
        (40, 24, (5, 3), (2, 1, 2, 1), (2, 1), 1),
        (lanes, 24, (3, 3), (1, 1, 1, 1), (1, 1), 1),              # one vector: tiles of 14 + 9 (W = 23)
        (2 * lanes, 8, (3, 5), (0, 2, 1, 3), (1, 2), 2),          # one vector per group
        (3 * lanes // 4, 16, (5, 5), (0, 0, 0, 0), (1, 1), 1),     # 3/4 of a vector
    ]
    for c, o, k, pad, dil, groups in cases:
        check_gradient_path((2, c, o, 20, 23, k, (1, 1), pad, dil, groups), dtype, 0,
                            "grad_input: direct, output channels as vector lanes, of the flipped weights", seed=74)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grad_weight_channel_lanes(dtype):
    # oc_lanes_grad_weight (direct_oc.cpp): output channels as lanes, x read in place, 2 x 14 tiles up to 32
    # channels (fp32), else 4 x 6 (a partial last vector and tile of input channels). Auto takes it with 17-64
    # output channels for stride 1, and for other strides from 8 input channels per group; forced "direct"
    # for any row stride beyond 16 channels. Both against the float64 reference, and auto bitwise equal to
    # forced "direct".
    cases = [  # n, c, o, h, w, k, stride, padding, dilation, groups, auto takes it
        (2, 30, 24, 13, 17, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, True),
        (3, 20, 50, 11, 9, (5, 5), (1, 1), (1, 3, 0, 2), (1, 2), 2, True),   # 25 channels per group
        (2, 16, 48, 12, 12, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, True),   # fp32: the 4 x 6 tile, a zero 4th vector
        (2, 12, 40, 15, 14, (3, 3), (2, 1), (1, 0, 1, 1), (2, 1), 1, True),   # row stride 2, 12 input channels
        (2, 6, 40, 15, 14, (3, 3), (2, 1), (1, 0, 1, 1), (2, 1), 1, False),   # 6 input channels: forced only
        (1, 9, 70, 10, 12, (3, 2), (1, 1), (0, 1, 1, 0), (1, 1), 1, False),  # short reduction: forced only
    ]
    for n, c, o, h, w, k, stride, pad, dil, groups, auto in cases:
        x, wt, gy, _, ref_gw = grad_case(n, c, o, h, w, k, stride, pad, dil, groups, dtype, seed=81)
        gw = {a: ops.corr2d_backward(gy, x, wt, list(stride), list(pad), list(dil), groups, [False, True, False], a)[1]
              for a in ("auto", "direct")}
        assert_rel_close(gw["direct"], ref_gw, 1e-12 if dtype == torch.float64 else 1e-5)
        text = str(convkit.explain(x.shape, wt.shape, stride=stride, padding=tuple(pad), dilation=dil, groups=groups))
        assert ("grad_weight: output channels as vector lanes" in text) == auto, text
        if auto:
            assert torch.equal(gw["auto"], gw["direct"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grad_weight_channel_lanes_one_vector(threads, dtype):
    # oc_cols_grad_weight (direct_oc.cpp): output channels as the lanes of one vector, (kernel column, input
    # channel) pairs as the tile. "auto" and "direct" take it from 3/4 of a vector of output channels per group
    # (fp32: 13-16, fp64: 7-8) with >= 5 pairs and column dilation 1: LeNet's L2, padding, row stride 2 and
    # row dilation, groups, a partial last tile of pairs, more images than image blocks (and fewer).
    lanes = 16 if dtype == torch.float32 else 8
    cases = [  # n, c, o, h, w, k, stride, padding, dilation, groups
        (8, 6, lanes, 14, 14, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),        # L2 (30 pairs: 2 tiles of 16)
        (3, 3, lanes - 1, 13, 11, (3, 3), (2, 1), (1, 0, 2, 1), (2, 1), 1),    # 9 pairs in a 12-pair tile
        (6, 10, 2 * lanes, 9, 12, (3, 4), (1, 2), (2, 1, 0, 3), (1, 1), 2),    # 20 pairs, column stride 2
        (1, 2, lanes, 7, 20, (2, 7), (1, 1), (1, 1, 3, 3), (1, 1), 1),         # 14 pairs
    ]
    for case in cases:  # "direct" needs column stride 1
        check_gradient_path(case, dtype, 1,
                            "grad_weight: output channels as vector lanes, (kernel column, input channel) pairs",
                            seed=91, algos=("auto", "direct") if case[6][1] == 1 else ("auto",))
    # the float64 case is a gradient too (gradcheck and opcheck through the op, L2-like but small)
    if dtype == torch.float64:
        x = rand(2, 3, 7, 8, seed=94).requires_grad_()
        wt = rand(8, 3, 3, 3, seed=95).requires_grad_()
        assert "(kernel column, input channel) pairs" in str(convkit.explain(x.shape, wt.shape, padding=1,
                                                                             dtype=torch.float64))
        f = lambda x, wt: convkit.corr2d(x, wt, None, 1, 1, backend="compiled")  # noqa: E731
        assert torch.autograd.gradcheck(f, (x, wt))
        gy = rand(2, 8, 7, 8, seed=96)
        torch.library.opcheck(ops.corr2d_backward.default,
                              (gy, x.detach(), wt.detach(), [1, 1], [1, 1, 1, 1], [1, 1], 1, [True, True, True], "auto"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grad_input_column_pairs_as_lanes(threads, dtype):
    # oc_cols_grad_input (direct_oc.cpp): (kernel column, input channel) pairs as the lanes of one or two vectors,
    # dY read in place, the column shifts folded per gx row. "auto" and "direct" take it for stride 1 with 5 to
    # 2 vectors of pairs and >= 5 output channels per group (where the transposed rows problem is valid):
    # LeNet's L1 and L2, one and two vectors, tiles of 8-14 dY columns with and without the padded dY copy
    # (Wo not a multiple of the tile), padding, dilation (a gx row no dY row reaches), groups, one image split
    # into row blocks.
    lanes = 16 if dtype == torch.float32 else 8
    few = 6 if dtype == torch.float32 else 3  # fp64: two vectors are 16 pairs
    cases = [  # n, c, o, h, w, k, stride, padding, dilation, groups
        (8, few, 16, 14, 14, (5, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),        # L2 (fp32): 30 pairs, Wo = 10
        (2, 1, 6, 28, 28, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),           # L1: 5 pairs, Wo = 28 (2 x 14)
        (1, 3, 7, 17, 23, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),           # 9 pairs, Wo = 23 (copy)
        (2, few - 1, 8, 4, 12, (2, 3), (1, 1), (0, 0, 0, 0), (3, 1), 1),      # gx rows 1-2: no dY row reaches
        (2, 8, 10, 12, 31, (3, 3), (1, 1), (1, 2, 1, 0), (2, 2), 2),          # 12 pairs per group, dilation 2
        (3, 2 * lanes // 5, 5, 9, 16, (3, 5), (1, 1), (2, 0, 4, 1), (1, 1), 1),  # 2 vectors less at most 4 lanes
        (1, 2, 200, 6, 150, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),        # dY copies of one gx row per block
    ]
    for case in cases:
        check_gradient_path(case, dtype, 0, "grad_input: direct, (kernel column, input channel) pairs as vector lanes",
                            seed=101)
    # where the rule keeps the rows kernel: 3 pairs, 4 output channels, more than 2 vectors of pairs
    for c, o, k in ((1, 16, 3), (1, 4, 5), (2 * lanes // 5 + 1, 8, 5)):
        text = str(convkit.explain((2, c, 20, 20), (o, c, k, k), padding=k // 2, dtype=dtype))
        assert "grad_input: direct rows of the flipped weights" in text, text
    if dtype == torch.float64:  # a gradient: gradcheck and opcheck through the op, double backward included
        x = rand(2, 2, 6, 7, seed=104).requires_grad_()
        wt = rand(5, 2, 3, 3, seed=105).requires_grad_()
        assert "pairs as vector lanes, dY" in str(convkit.explain(x.shape, wt.shape, padding=1, dtype=torch.float64))
        f = lambda x, wt: convkit.corr2d(x, wt, None, 1, 1, backend="compiled")  # noqa: E731
        assert torch.autograd.gradcheck(f, (x, wt))
        assert torch.autograd.gradgradcheck(f, (x, wt))
        gy = rand(2, 5, 6, 7, seed=106)
        torch.library.opcheck(ops.corr2d_backward.default,
                              (gy, x.detach(), wt.detach(), [1, 1], [1, 1, 1, 1], [1, 1], 1, [True, True, False], "auto"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_winograd_one_image_per_work_item(dtype):
    # >= 8 images: the forward and grad_input run one image per work item (not the chunked passes); groups,
    # unequal dilation, against float64 F.conv2d
    x = rand(9, 64, 20, 23, seed=81, dtype=dtype).requires_grad_()
    wt = rand(64, 32, 3, 3, seed=82, dtype=dtype).requires_grad_()
    b = rand(64, seed=83, dtype=dtype)
    y = convkit.corr2d(x, wt, b, 1, (2, 2, 1, 1), (2, 1), 2, backend="compiled", algo="winograd")
    gy = rand(*y.shape, seed=84, dtype=dtype)
    gx, gw = torch.autograd.grad(y, (x, wt), gy)
    xd, wd = (t.detach().double().requires_grad_() for t in (x, wt))
    ref = F.conv2d(xd, wd, b.double(), 1, (2, 1), (2, 1), 2)
    rgx, rgw = torch.autograd.grad(ref, (xd, wd), gy.double())
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    for got, want in ((y, ref), (gx, rgx), (gw, rgw)):
        assert_rel_close(got, want, tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,o,h,w,pad,dil,groups", [
    (3, 64, 96, 20, 23, (1, 1, 1, 1), (1, 1), 1),   # 90 tiles: ranges of tile rows at 1 thread, chunks at 2 and 3
    (4, 128, 128, 28, 28, (1, 1, 1, 1), (1, 1), 1),  # R8-like, 28 rows of 7 tiles: ranges cut inside images
    (5, 64, 64, 30, 30, (2, 2, 2, 2), (2, 2), 2),    # 4 dilation phases, groups: 96-tile pieces cut mid-image
    (6, 32, 40, 26, 13, (0, 2, 1, 1), (1, 2), 1),    # uneven padding, 2 column phases, a short last piece
])
def test_winograd_forward_schedules(threads, n, c, o, h, w, pad, dil, groups, dtype):
    # Fewer than 8 images: the forward and grad_input run per-thread ranges of tile rows (winograd.cpp
    # winograd_forward_rows) where each thread gets >= 48 tiles, else the chunked passes; which one depends on
    # the thread count, and the result must not: identical at 1, 2 and 3 threads, and against float64.
    x, wt = rand(n, c, h, w, seed=95, dtype=dtype), rand(o, c // groups, 3, 3, seed=96, dtype=dtype)
    b = rand(o, seed=97, dtype=dtype)
    args = ([1, 1], list(pad), list(dil), groups)
    runs, workspaces = [], set()
    for nt in (1, 2, 3):
        torch.set_num_threads(nt)
        y = ops.corr2d(x, wt, b, *args, "winograd")
        gy = rand(*y.shape, seed=98, dtype=dtype)
        runs.append((y, ops.corr2d_backward(gy, x, wt, *args, [True, False, False], "winograd")[0]))
        plan = convkit._C.corr2d_plan((n, c, h, w), (o, c // groups, 3, 3), (1, 1), pad, dil, groups, "winograd",
                              x.element_size())
        workspaces.add(plan[0][1])
    # the schedule (and so the forward's workspace) changes with the thread count in every case: per-thread
    # row ranges at 1 thread, and at 2 and 3 either chunks or other ranges
    assert len(workspaces) > 1, "the Winograd forward's schedule does not depend on the thread count"
    for other in runs[1:]:
        for name, r1, r2 in zip(("output", "grad_input"), runs[0], other):
            assert torch.equal(r1, r2), f"{name} differs with the thread count"
    xd = x.double().requires_grad_()
    ref = F.conv2d(F.pad(xd, (pad[2], pad[3], pad[0], pad[1])), wt.double(), b.double(), 1, 0, dil, groups)
    (gx_ref,) = torch.autograd.grad(ref, (xd,), gy.double())
    rel = 1e-4 if dtype == torch.float32 else 1e-10
    assert_rel_close(runs[0][0], ref, rel)
    assert_rel_close(runs[0][1], gx_ref, rel)


def test_winograd_skips_empty_dilation_phases():
    # a dilation past the output's size: only the phases with outputs are tiled (forced), and auto does not
    # take Winograd where most of its tiles' outputs would be dropped
    x = rand(2, 32, 12, 12, seed=91, dtype=torch.float64)
    wt = rand(32, 32, 3, 3, seed=92, dtype=torch.float64)
    y = ops.corr2d(x, wt, None, [1, 1], [9, 9, 9, 9], [9, 9], 1, "winograd")
    assert_rel_close(y, F.conv2d(x, wt, None, 1, 9, 9), 1e-12)
    assert not winograd_rule(8, 32, 32, 12, 12, dilation=9)
    assert "Winograd" not in str(convkit.explain((8, 32, 12, 12), (32, 32, 3, 3), padding=9, dilation=9)).split("grad_input")[0]


@pytest.mark.usefixtures("blas_prefer")
def test_auto_takes_winograd_on_a_dilated_dense_layer():
    # X3's kind (dense 3x3, dilation 2): auto's forward is the phase-split Winograd (bitwise), not the rows
    # kernel, and it meets the float32 accuracy target
    x = rand(2, 32, 28, 28, seed=61, dtype=torch.float32)
    wt = rand(32, 32, 3, 3, seed=62, dtype=torch.float32)
    assert winograd_rule(2, 32, 32, 28, 28, dilation=2)
    ys = {a: ops.corr2d(x, wt, None, [1, 1], [2, 2, 2, 2], [2, 2], 1, a) for a in ("auto", "winograd", "direct")}
    assert torch.equal(ys["auto"], ys["winograd"]) and not torch.equal(ys["auto"], ys["direct"])
    assert_rel_close(ys["auto"], F.conv2d(x.double(), wt.double(), None, 1, 2, 2))


@pytest.mark.parametrize("shape", [
    # (N, C, O, H, W, stride, padding, groups): <= 16 channels per group, not 1x1: auto's backward is direct's
    (2, 3, 4, 11, 10, 1, 1, 1),
    (2, 8, 12, 21, 22, (2, 1), (0, 2, 1, 0), 2),
    (1, 6, 6, 9, 9, 1, 3, 6),
])
def test_auto_equals_direct_on_few_channels(shape):
    n, c, o, h, w, stride, p, groups = shape
    x = rand(n, c, h, w, seed=31, dtype=torch.float32).requires_grad_()
    wt = rand(o, c // groups, 3, 3, seed=32, dtype=torch.float32).requires_grad_()
    b = rand(o, seed=33, dtype=torch.float32).requires_grad_()
    res = {}
    for a in ("auto", "direct", "implicit_gemm"):
        y = convkit.corr2d(x, wt, b, stride, p, 1, groups, backend="compiled", algo=a)
        res[a] = (y, *torch.autograd.grad(y, (x, wt, b), rand(*y.shape, seed=34, dtype=torch.float32)))
    for name, r_auto, r_direct in zip(("output", "grad_input", "grad_weight", "grad_bias"), res["auto"],
                                      res["direct"]):
        assert torch.equal(r_auto, r_direct), name
    # and the check discriminates: the tiled kernels round differently somewhere
    assert not all(torch.equal(a, b) for a, b in zip(res["direct"][:3], res["implicit_gemm"][:3]))


@pytest.mark.usefixtures("blas_prefer")
def test_auto_on_a_winograd_layer_forward_and_backward():
    # auto's forward is Winograd here (bitwise); its backward, whatever it chooses per direction, and forced
    # Winograd's backward (grad_input by Winograd on the flipped weights) meet the float32 accuracy target.
    x = rand(2, 32, 32, 32, seed=41, dtype=torch.float32).requires_grad_()
    wt = rand(32, 32, 3, 3, seed=42, dtype=torch.float32).requires_grad_()
    b = rand(32, seed=43, dtype=torch.float32).requires_grad_()
    gy = rand(2, 32, 32, 32, seed=44, dtype=torch.float32)
    xd, wd, bd = (t.detach().double().requires_grad_() for t in (x, wt, b))
    ref = F.conv2d(xd, wd, bd, 1, 1)
    ref_grads = torch.autograd.grad(ref, (xd, wd, bd), gy.double())
    res = {}
    for a in ("auto", "winograd", "direct"):
        y = convkit.corr2d(x, wt, b, 1, 1, backend="compiled", algo=a)
        res[a] = (y, *torch.autograd.grad(y, (x, wt, b), gy))
        for name, got, want in zip(("output", "grad_input", "grad_weight", "grad_bias"), res[a],
                                   (ref, *ref_grads)):
            assert_rel_close(got, want)
    assert torch.equal(res["auto"][0], res["winograd"][0])
    # Winograd's grad_input is not the rows kernel's
    assert not torch.equal(res["winograd"][1], res["direct"][1])


# --------------------------------------------------------------------------- 7. errors
X = torch.randn(1, 4, 8, 8)
W = torch.randn(2, 4, 3, 3)
W5 = torch.randn(2, 4, 5, 5)


@pytest.mark.parametrize("call,match", [
    (lambda: convkit.corr2d(X, W, algo="bogus"), "algo must be one of 'auto', 'direct'.*got 'bogus'"),
    (lambda: convkit.corr2d(X, W, backend="compiled", algo="Direct"), "algo must be one of.*got 'Direct'"),
    (lambda: convkit.corr2d(X, W, backend="unfold", algo="direct"),
     "algo='direct' chooses an algorithm of the compiled backend.*'unfold'"),
    (lambda: convkit.corr2d(X, W, backend="torch", algo="winograd"), "algo='winograd' .*compiled backend.*'torch'"),
    (lambda: convkit.corr2d(X, W, backend="naive", algo="im2col"), "algo='im2col' .*compiled backend.*'naive'"),
    (lambda: convkit.corr2d(X, W, stride=(1, 2), backend="compiled", algo="direct"),
     r"algo='direct'.*column stride of 1.*\(1, 2\)"),
    (lambda: convkit.corr2d(X, W, stride=2, algo="direct"), r"algo='direct'.*column stride of 1"),
    (lambda: convkit.corr2d(X, W5, backend="compiled", algo="winograd"),
     r"algo='winograd'.*3x3 kernel with stride 1.*\(5, 5\)"),
    # stride 2: a kernel 5 to 8 wide, dilation 1 and groups 1 (winograd_s2)
    (lambda: convkit.corr2d(X, W, stride=2, backend="compiled", algo="winograd"),
     r"algo='winograd'.*stride 2 with a kernel 5 to 8 wide.*kernel \(3, 3\), stride \(2, 2\)"),
    (lambda: convkit.corr2d(X, W5, stride=2, dilation=2, padding=4, backend="compiled", algo="winograd"),
     r"algo='winograd'.*dilation \(2, 2\)"),
    (lambda: convkit.corr2d(X, torch.randn(2, 2, 5, 5), stride=2, groups=2, backend="compiled", algo="winograd"),
     r"algo='winograd'.*groups 2"),
    (lambda: convkit.corr2d(X.clone().requires_grad_(), torch.randn(2, 4, 5, 9), stride=2, padding=4,
                            backend="compiled", algo="winograd"), r"algo='winograd'.*kernel \(5, 9\)"),
    (lambda: convkit.corr2d(X, torch.randn(2, 4, 3, 1), algo="winograd"), r"algo='winograd'.*\(3, 1\)"),
    (lambda: convkit.corr2d(X, W, stride=(2, 1), backend="compiled", algo="winograd"),
     r"algo='winograd'.*stride \(2, 1\)"),
    (lambda: convkit.corr2d(X.clone().requires_grad_(), W5, backend="compiled", algo="winograd"), "algo='winograd'"),
    (lambda: convkit.corr2d(X, W5, padding=(1, 0), padding_mode="reflect", backend="compiled", algo="winograd"),
     "algo='winograd'"),
    (lambda: convkit.nn.Conv2d(4, 2, 3, algo="bogus"), "algo must be one of.*got 'bogus'"),
    (lambda: convkit.nn.Conv2d(4, 2, 5, backend="compiled", algo="winograd")(X), "algo='winograd'"),
    (lambda: convkit.nn.Conv2d(4, 2, 3, backend="unfold", algo="direct")(X), "algo='direct'.*'unfold'"),
    (lambda: convkit.nn.Conv2d(4, 2, 3, stride=(1, 2), algo="direct")(X), "algo='direct'.*column stride"),
])
def test_python_algo_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_algo_not_implemented_on_the_device(monkeypatch):
    # a device whose build lacks an algorithm (CUDA has no im2col / Winograd)
    with pytest.raises(ValueError, match="algo='winograd' is not implemented on cuda.*'implicit_gemm'"):
        functional._check_algo("winograd", "compiled", torch.device("cuda"), (3, 3), (1, 1), (1, 1), 1)
    monkeypatch.setitem(functional._DEVICE_ALGOS, "cpu", ("auto", "direct", "implicit_gemm"))
    monkeypatch.setattr(functional, "_CK", None)  # the checked path (the eager entry point has the C++ list)
    with pytest.raises(ValueError, match="algo='im2col' is not implemented on cpu"):
        convkit.corr2d(X.clone().requires_grad_(), W, backend="compiled", algo="im2col")


def test_allowed_algos_do_not_raise():
    # the boundaries of the checks: row stride with direct, any padding and groups with Winograd
    ref = F.conv2d(X, W, None, (2, 1), 1)
    torch.testing.assert_close(convkit.corr2d(X, W, stride=(2, 1), padding=1, algo="direct"), ref)
    xg, wg = torch.randn(1, 4, 7, 6), torch.randn(6, 2, 3, 3)
    ref = F.conv2d(F.pad(xg, (3, 0, 0, 4)), wg, None, 1, 0, 1, 2)
    # Winograd's fp32 error is relative to the output's scale (1e-4, the accuracy target), also where the
    # exact output is 0 (a tile's transform mixes its nonzero inputs in): not elementwise-relative
    scale = lambda r: dict(rtol=0, atol=1e-4 * r.abs().max().item())  # noqa: E731
    torch.testing.assert_close(convkit.corr2d(xg, wg, None, 1, (0, 4, 3, 0), 1, 2, algo="winograd"), ref, **scale(ref))
    m = convkit.nn.Conv2d(4, 2, 3, algo="winograd")
    assert m.algo == "winograd" and "algo='winograd'" in repr(m)
    ref = F.conv2d(X, m.weight, m.bias)
    torch.testing.assert_close(m(X), ref, **scale(ref))


def _op_call(algo, stride=(1, 1), k=3, dilation=(1, 1), backward=False):
    x, w = torch.randn(1, 4, 8, 8), torch.randn(2, 4, k, k)
    conf = ([*stride], [0, 0, 0, 0], [*dilation], 1)
    if backward:
        ho = (8 - dilation[0] * (k - 1) - 1) // stride[0] + 1
        wo = (8 - dilation[1] * (k - 1) - 1) // stride[1] + 1
        return lambda: ops.corr2d_backward(torch.randn(1, 2, ho, wo), x, w, *conf, [True, True, True], algo)
    return lambda: ops.corr2d(x, w, None, *conf, algo)


@pytest.mark.parametrize("backward", [False, True], ids=["corr2d", "corr2d_backward"])
@pytest.mark.parametrize("kw,match", [
    (dict(algo="bogus"), "algo must be one of 'auto', 'direct', 'implicit_gemm', 'im2col', 'winograd', got 'bogus'"),
    (dict(algo=""), "algo must be one of .* got ''"),
    (dict(algo="direct", stride=(1, 2)), r"algo='direct'.*column stride of 1, got stride \(1, 2\)"),
    (dict(algo="winograd", k=5), r"algo='winograd'.*needs a 3x3 kernel.*got kernel \(5, 5\)"),
    (dict(algo="winograd", stride=(1, 2)), r"algo='winograd'.*stride \(1, 2\)"),
])
def test_op_level_algo_checks(kw, match, backward):
    with pytest.raises(RuntimeError, match=match):
        _op_call(backward=backward, **kw)()


def test_op_level_checks_run_on_an_empty_batch():
    x, w = torch.randn(0, 4, 8, 8), torch.randn(2, 4, 5, 5)
    with pytest.raises(RuntimeError, match="algo='winograd'"):
        ops.corr2d(x, w, None, [1, 1], [0, 0, 0, 0], [1, 1], 1, "winograd")
    with pytest.raises(RuntimeError, match="got 'bogus'"):
        ops.corr2d(x, w, None, [1, 1], [0, 0, 0, 0], [1, 1], 1, "bogus")


# --------------------------------------------------------------------------- 8. the eager entry point
@pytest.mark.parametrize("algo", ALGOS)
def test_corr2d_eager_takes_algo(algo):
    ck = functional._CK
    x, w, b = rand(2, 6, 11, 9, seed=51, dtype=torch.float32), rand(10, 3, 3, 3, seed=52, dtype=torch.float32), \
        rand(10, seed=53, dtype=torch.float32)
    y = ck.corr2d_eager(x, w, b, 1, (0, 2, 1, 0), 1, 2, algo)
    assert y is not NotImplemented
    assert torch.equal(y, ops.corr2d(x, w, b, [1, 1], [0, 2, 1, 0], [1, 1], 2, algo))
    assert torch.equal(ck.corr2d_eager(x, w, None, (1, 1), (1, 2), [1, 1], 2, algo),
                       ops.corr2d(x, w, None, [1, 1], [1, 1, 2, 2], [1, 1], 2, algo))
    assert_rel_close(y, F.conv2d(F.pad(x.double(), (1, 0, 0, 2)), w.double(), b.double(), 1, 0, 1, 2))


def test_corr2d_eager_refuses_bad_algo():
    ck = functional._CK
    x, w = torch.randn(2, 3, 9, 10), torch.randn(4, 3, 3, 3)

    class Str(str):
        pass

    assert ck.corr2d_eager(x, w, None, 1, 1, 1, 1, "winograd") is not NotImplemented
    assert ck.corr2d_eager(x, w, None, 1, 1, 2, 1, "winograd") is not NotImplemented  # any dilation
    refused = [
        lambda: ck.corr2d_eager(x, w, None, 1, 1, 1, 1, 1),
        lambda: ck.corr2d_eager(x, w, None, 1, 1, 1, 1, None),
        lambda: ck.corr2d_eager(x, w, None, 1, 1, 1, 1, b"direct"),
        lambda: ck.corr2d_eager(x, w, None, 1, 1, 1, 1, Str("direct")),  # exact str only
        lambda: ck.corr2d_eager(x, w, None, 1, 1, 1, 1, "bogus"),
        lambda: ck.corr2d_eager(x, w, None, 1, 1, 1, 1, "Winograd"),
        lambda: ck.corr2d_eager(x, w, None, 1, 1, 1, 1, "\udcff"),  # not encodable as UTF-8
        lambda: ck.corr2d_eager(x, w, None, (1, 2), 1, 1, 1, "direct"),
        lambda: ck.corr2d_eager(x, w, None, 2, 1, 1, 1, "winograd"),
        lambda: ck.corr2d_eager(x, torch.randn(4, 3, 5, 5), None, 1, 1, 1, 1, "winograd"),
        lambda: ck.corr2d_eager(x, w, None, 1, 1, 1, 1, "direct", "extra"),
    ]
    for i, call in enumerate(refused):
        assert call() is NotImplemented, i
    # no Python error is left set after a refusal
    assert torch.equal(ck.corr2d_eager(x, w, None, 1, 1, 1, 1), ck.corr2d_eager(x, w, None, 1, 1, 1, 1, "auto"))


@pytest.mark.parametrize("algo", FORCED)
def test_public_api_passes_algo_to_the_eager_entry_point(monkeypatch, algo):
    calls = []
    real = functional._CK

    class Spy:
        def corr2d_eager(self, *args):
            calls.append(args)
            return real.corr2d_eager(*args)

    monkeypatch.setattr(functional, "_CK", Spy())
    y = convkit.corr2d(X, W, None, 1, 1, algo=algo)
    assert len(calls) == 1 and calls[0][7] == algo
    assert torch.equal(y, ops.corr2d(X, W, None, [1, 1], [1, 1, 1, 1], [1, 1], 1, algo))


# --------------------------------------------------------------------------- 9. edge cases per algo
@pytest.mark.parametrize("algo", ALGOS)
def test_empty_batch(algo):
    x = torch.randn(0, 4, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    # a non-empty call first, so that any workspace kept between calls holds other values
    x1 = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    y1 = ops.corr2d(x1, w.detach(), None, [1, 1], [1, 0, 2, 1], [1, 1], 2, algo)
    ops.corr2d_backward(torch.randn_like(y1), x1, w.detach(), [1, 1], [1, 0, 2, 1], [1, 1], 2,
                        [True, True, True], algo)
    y = convkit.corr2d(x, w, b, 1, (1, 0, 2, 1), 1, 2, backend="compiled", algo=algo)
    assert y.shape == (0, 6, 8, 9)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), torch.ones_like(y))
    assert gx.shape == x.shape
    assert torch.equal(gw, torch.zeros_like(w)), f"grad_weight of an empty batch is not zero: max |gw| = " \
        f"{gw.abs().max().item():.3g}"
    assert torch.equal(gb, torch.zeros_like(b))
    with torch.no_grad():
        assert convkit.corr2d(x, w, b, 1, (1, 0, 2, 1), 1, 2, backend="compiled", algo=algo).shape == (0, 6, 8, 9)
    gx, gw, gb = ops.corr2d_backward(torch.zeros(0, 6, 8, 9, dtype=torch.float64), x.detach(), w.detach(), [1, 1],
                                     [1, 0, 2, 1], [1, 1], 2, [True, True, True], algo)
    assert gx.shape == x.shape and torch.equal(gw, torch.zeros_like(w)) and torch.equal(gb, torch.zeros_like(b))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("algo", ALGOS)
def test_half_types_computed_in_float32(algo, dtype):
    x = rand(2, 8, 10, 9, seed=61).to(dtype)
    w = rand(12, 4, 3, 3, seed=62).to(dtype)
    b = rand(12, seed=63).to(dtype)
    conf = ([1, 1], [1, 0, 2, 1], [1, 1], 2)
    y = ops.corr2d(x, w, b, *conf, algo)
    assert y.dtype == dtype
    # computed in float32 from the same values and rounded once at the end
    y32 = ops.corr2d(x.float(), w.float(), b.float(), *conf, algo)
    assert torch.equal(y, y32.to(dtype))
    tol = 1e-2 if dtype == torch.float16 else 2e-2
    assert_rel_close(y, F.conv2d(F.pad(x.double(), (2, 1, 1, 0)), w.double(), b.double(), 1, 0, 1, 2), rel=tol)
    with torch.no_grad():  # the public API (eager entry point) keeps the dtype too
        assert torch.equal(convkit.corr2d(x, w, b, 1, (1, 0, 2, 1), 1, 2, backend="compiled", algo=algo), y)
    gy = rand(*y.shape, seed=64).to(dtype)
    grads = ops.corr2d_backward(gy, x, w, *conf, [True, True, True], algo)
    grads32 = ops.corr2d_backward(gy.float(), x.float(), w.float(), *conf, [True, True, True], algo)
    for g, g32, t in zip(grads, grads32, (x, w, b)):
        assert g.dtype == dtype and g.shape == t.shape
        assert torch.equal(g, g32.to(dtype))
    # and through autograd
    xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
    yr = convkit.corr2d(xr, wr, br, 1, (1, 0, 2, 1), 1, 2, backend="compiled", algo=algo)
    assert torch.equal(yr, y)
    for g, g_op in zip(torch.autograd.grad(yr, (xr, wr, br), gy), grads):
        assert g.dtype == dtype and torch.equal(g, g_op)


@pytest.mark.parametrize("algo", ALGOS)
def test_layouts(algo):
    # channels_last and non-contiguous (transposed, channel-sliced) inputs and weights, a strided bias
    x = rand(2, 6, 10, 11, seed=71)
    w = rand(8, 3, 3, 3, seed=72)
    b = rand(16, seed=73)[::2]
    layouts = {
        "channels_last_x": (x.contiguous(memory_format=torch.channels_last), w),
        "transposed_x": (x.transpose(2, 3).contiguous().transpose(2, 3), w),
        "channel_sliced_x": (torch.cat([x, x], dim=1)[:, ::2], w),
        "channels_last_w": (x, w.contiguous(memory_format=torch.channels_last)),
        "transposed_w": (x, w.transpose(2, 3).contiguous().transpose(2, 3)),
    }
    for name, (xl, wl) in layouts.items():
        assert not (xl.is_contiguous() and wl.is_contiguous()), name
        ref = F.conv2d(xl, wl, b, 1, 1, 1, 2)
        with torch.no_grad():
            torch.testing.assert_close(convkit.corr2d(xl, wl, b, 1, 1, 1, 2, backend="compiled", algo=algo), ref,
                                       **TIGHT, msg=lambda m: f"{name}: {m}")
        xg, wg = xl.clone().requires_grad_(), wl.clone().requires_grad_()
        y = convkit.corr2d(xg, wg, b, 1, 1, 1, 2, backend="compiled", algo=algo)
        torch.testing.assert_close(y, ref, **TIGHT, msg=lambda m: f"{name}: {m}")
        xr, wr = xl.clone().requires_grad_(), wl.clone().requires_grad_()
        r = F.conv2d(xr, wr, b, 1, 1, 1, 2)
        gy = rand(*r.shape, seed=74)
        want = torch.autograd.grad(r, (xr, wr), gy)
        for got, ref_g in zip(torch.autograd.grad(y, (xg, wg), gy), want):
            torch.testing.assert_close(got, ref_g, **TIGHT, msg=lambda m: f"{name}: {m}")
        # the backward op with a channels_last grad_output too
        gx, gw, _ = ops.corr2d_backward(gy.contiguous(memory_format=torch.channels_last), xl, wl, [1, 1],
                                        [1, 1, 1, 1], [1, 1], 2, [True, True, False], algo)
        for got, ref_g in zip((gx, gw), want):
            torch.testing.assert_close(got, ref_g, **TIGHT, msg=lambda m: f"{name} (op): {m}")


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("groups_case", [
    # (N, C, O, H, W, groups): grouped and depthwise (multiplier 1 and 2) layers of useful size
    (2, 32, 32, 20, 19, 32),
    (2, 16, 32, 13, 14, 16),
    (2, 24, 36, 12, 15, 3),
], ids=["depthwise", "depthwise_x2", "groups3"])
def test_groups_and_depthwise(algo, groups_case):
    n, c, o, h, w, groups = groups_case
    x = rand(n, c, h, w, seed=81).requires_grad_()
    wt = rand(o, c // groups, 3, 3, seed=82).requires_grad_()
    b = rand(o, seed=83).requires_grad_()
    y = convkit.corr2d(x, wt, b, 1, 1, 1, groups, backend="compiled", algo=algo)
    ref = F.conv2d(x, wt, b, 1, 1, 1, groups)
    torch.testing.assert_close(y, ref, **TIGHT)
    gy = rand(*ref.shape, seed=84)
    for got, want in zip(torch.autograd.grad(y, (x, wt, b), gy), torch.autograd.grad(ref, (x, wt, b), gy)):
        torch.testing.assert_close(got, want, **TIGHT)


@pytest.mark.parametrize("algo", ALGOS)
def test_no_bias_and_partial_masks(algo):
    x, w = rand(2, 4, 9, 8, seed=91), rand(6, 4, 3, 3, seed=92)
    conf = ([1, 1], [2, 0, 1, 1], [1, 1], 1)
    y = ops.corr2d(x, w, None, *conf, algo)
    ref = F.conv2d(F.pad(x, (1, 1, 2, 0)), w)
    torch.testing.assert_close(y, ref, **TIGHT)
    gy = rand(*y.shape, seed=93)
    full = ops.corr2d_backward(gy, x, w, *conf, [True, True, True], algo)
    for mask in ([True, False, False], [False, True, False], [False, False, True], [False, False, False]):
        part = ops.corr2d_backward(gy, x, w, *conf, mask, algo)
        for m, p, f in zip(mask, part, full):
            if m:
                assert torch.equal(p, f)
            else:
                assert p is None
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    for got, want in zip(full[:2], torch.autograd.grad(F.conv2d(F.pad(xr, (1, 1, 2, 0)), wr), (xr, wr), gy)):
        torch.testing.assert_close(got, want, **TIGHT)
    torch.testing.assert_close(full[2], gy.sum((0, 2, 3)), **TIGHT)


# --------------------------------------------------------------------------- 1x1 forward through BLAS
@pytest.mark.parametrize("n, groups, bias, dtype", [(4, 1, True, torch.float64), (2, 2, False, torch.float64),
                                                      (8, 1, True, torch.float32), (3, 1, True, torch.float64)])
@pytest.mark.usefixtures("blas_prefer")
def test_pointwise_forward(n, groups, bias, dtype):
    # auto runs 1x1 stride-1 unpadded layers on planes under 28x28 with > 32 output channels per group
    # (fewer: the pointwise kernel) from 4 images x groups as one BLAS product per image and group
    x = rand(n, 8, 5, 7, seed=41, dtype=dtype)
    wt = rand(80, 8 // groups, 1, 1, seed=42, dtype=dtype)
    b = rand(80, seed=43, dtype=dtype) if bias else None
    e = convkit.explain(tuple(x.shape), tuple(wt.shape), groups=groups)
    uses_blas = n * groups >= 4
    assert ("per-image BLAS W X" in e.backends["compiled"]["forward"]) == uses_blas
    y = convkit.corr2d(x, wt, b, groups=groups, backend="compiled")
    ref = F.conv2d(x.double(), wt.double(), None if b is None else b.double(), groups=groups)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y.double(), ref, **tol)
    torch.testing.assert_close(y, convkit.corr2d(x, wt, b, groups=groups, backend="compiled", algo="implicit_gemm"),
                               **tol)


# --------------------------------------------------------------------------- column blocks through BLAS
@pytest.mark.parametrize("n, c, o, h, stride, groups, bias, dtype", [
    (1, 64, 128, 9, 1, 1, True, torch.float64),     # one image: the products accumulate in y itself
    (3, 64, 150, 6, 1, 1, False, torch.float64),    # several images: the accumulator; blocks of 80 + 70
    (2, 128, 260, 5, 1, 2, True, torch.float32),    # groups
    (1, 64, 128, 13, 2, 1, True, torch.float32),    # stride 2 (R6 at N=1)
])
@pytest.mark.usefixtures("blas_prefer")
def test_columns_blas_paths(n, c, o, h, stride, groups, bias, dtype):
    # auto runs layers with >= 512 rows of k, >= 128 output channels per group and <= 1024 positions as BLAS
    # products of packed column blocks (forward_columns_blas), and their gradients likewise
    # (grad_input_columns_blas, grad_weight_columns_blas; stride 1 3x3 with >= 16 tiles: Winograd's)
    # The stride-1 cases keep the size, so their columns are packed by pack_cols_rows through pack_cols_same with
    # the run-time tile width TW = np (one row-major tile): with that branch skipped, these three fail.
    x = rand(n, c, h, h, seed=51, dtype=dtype).requires_grad_()
    wt = rand(o, c // groups, 3, 3, seed=52, dtype=dtype).requires_grad_()
    b = rand(o, seed=53, dtype=dtype).requires_grad_() if bias else None
    e = convkit.explain(tuple(x.shape), tuple(wt.shape), stride=stride, padding=1, groups=groups)
    assert "forward_columns_blas" in e.backends["compiled"]["forward"]
    assert "grad_input_columns_blas" in e.backends["compiled"]["grad_input"]
    assert "grad_weight_columns_blas" in e.backends["compiled"]["grad_weight"]
    y = convkit.corr2d(x, wt, b, stride, 1, groups=groups, backend="compiled")
    inputs = (x, wt) if b is None else (x, wt, b)
    gy = rand(*y.shape, seed=54, dtype=dtype)
    grads = torch.autograd.grad(y, inputs, gy)
    xd, wd = x.detach().double().requires_grad_(), wt.detach().double().requires_grad_()
    bd = None if b is None else b.detach().double().requires_grad_()
    ref = F.conv2d(xd, wd, bd, stride, 1, groups=groups)
    ref_grads = torch.autograd.grad(ref, (xd, wd) if bd is None else (xd, wd, bd), gy.double())
    for got, want in zip((y, *grads), (ref, *ref_grads)):
        if dtype == torch.float64:
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-11)
        else:
            assert_rel_close(got, want)
    y = y.detach()
    # a different path from forced implicit_gemm (forward_tiled), same values within rounding
    with torch.no_grad():
        assert_rel_close(convkit.corr2d(x, wt, b, stride, 1, groups=groups, backend="compiled", algo="implicit_gemm"),
                         ref)
    if dtype == torch.float64 and n == 1:
        torch.library.opcheck(ops.corr2d.default, (x, wt, b, [stride] * 2, [1] * 4, [1, 1], groups, "auto"))
        torch.library.opcheck(ops.corr2d_backward.default,
                              (gy, x, wt, [stride] * 2, [1] * 4, [1, 1], groups, [True, True, True], "auto"))


# --------------------------------------------------------------------------- "auto" where BLAS is slow
# Where ATen's BLAS runs well under the FMA peak (Zen 5 with MKL: 0.42 of it), "auto" takes convkit's own
# kernels in place of every BLAS-based path (make_plan, kBlasMinShare). Per case: what explain names for
# forward / grad_input / grad_weight, and the forced algorithm each direction must equal bitwise (None: no
# forced algorithm reaches it; stride 2 is not "direct"'s), with every output checked against float64.
LANES = "output channels as vector lanes"
@pytest.mark.usefixtures("blas_avoid")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", [
    # (N, C, O, H, kernel, stride, pad, dilation), then (explain substring, forced algo it equals) per direction
    # the column-block regime on 16 columns (R9's kind): channel lanes in all three directions
    ((1, 64, 128, 16, 3, 1, 1, 1), (LANES, "direct"), (LANES, "direct"), (LANES, "direct")),
    # on 7 columns (R11's kind): the tiled kernel forward; grad_input as forward_tiled over dY with the flipped
    # weights; grad_weight channel lanes
    ((2, 64, 128, 7, 3, 1, 1, 1), ("forward_tiled", "implicit_gemm"), ("flipped weights (forward_tiled)", "flipped"),
     (LANES, "direct")),
    # Winograd's rule holds (32 tiles) but not its slow-BLAS bounds (1024 tiles forward, 49 tiles per image
    # grad_weight): the channel-lanes kernels in every direction
    ((2, 32, 32, 16, 3, 1, 1, 1), (LANES, "direct"), (LANES, "direct"), (LANES, "direct")),
    # dilation 2: the same
    ((2, 32, 32, 16, 3, 1, 2, 2), (LANES, "direct"), (LANES, "direct"), (LANES, "direct")),
    # 49 tiles per image, one tile per <= 400 weights: grad_weight keeps Winograd
    ((1, 32, 32, 28, 3, 1, 1, 1), (LANES, "direct"), (LANES, "direct"), ("Winograd", "winograd")),
    # 1024 tiles, dilation 1: Winograd kept in every direction
    ((4, 32, 32, 64, 3, 1, 1, 1), ("Winograd", "winograd"), ("Winograd", "winograd"), ("Winograd", "winograd")),
    # 1x1 on 4 images: the pointwise kernel both ways, grad_weight's 6x4 tiles (6144 weights)
    ((4, 64, 96, 8, 1, 1, 0, 1), ("forward_pointwise_rows", "direct"), ("forward_pointwise_rows", "direct"),
     ("pointwise_grad_weight_direct", "direct")),
    # 1x1 on one image, 32768 weights (R10's kind): the tiled kernels
    ((1, 256, 128, 8, 1, 1, 0, 1), ("forward_tiled", "implicit_gemm"), ("grad_input_tiled", "implicit_gemm"),
     ("grad_weight_tiled", "implicit_gemm")),
    # stride 2 in the per-image regime (R6's kind): channel lanes forward and grad_weight, tiled grad_input
    ((2, 64, 128, 48, 3, 2, 1, 1), (LANES, None), ("grad_input_tiled", "implicit_gemm"), (LANES, None)),
    # stride 2 with 3 input channels (R1's kind, 21 output columns: not a multiple of 4, so not the stride-phase
    # Winograd forward, see test_winograd_s2_auto): grad_weight stays tiled
    ((2, 3, 64, 42, 7, 2, 3, 1), (LANES, None), ("grad_input_tiled", "implicit_gemm"),
     ("grad_weight_tiled", "implicit_gemm")),
])
def test_auto_without_fast_blas(case, dtype):
    (n, c, o, h, k, stride, pad, dil), *expect = case
    e = convkit.explain((n, c, h, h), (o, c, k, k), stride=stride, padding=pad, dilation=dil, dtype=dtype)
    for direction, (name, _) in zip(("forward", "grad_input", "grad_weight"), expect):
        assert name in e.backends["compiled"][direction] and "BLAS" not in e.backends["compiled"][direction].replace(
            ", BLAS products", ""), (direction, e.backends["compiled"][direction])  # Winograd's grad_weight
    x, wt = rand(n, c, h, h, seed=71, dtype=dtype), rand(o, c, k, k, seed=72, dtype=dtype)
    b = rand(o, seed=73, dtype=dtype)
    args = ([stride] * 2, [pad] * 4, [dil] * 2, 1)
    y = ops.corr2d(x, wt, b, *args, "auto")
    gy = rand(*y.shape, seed=74, dtype=dtype)
    gx, gw, gb = ops.corr2d_backward(gy, x, wt, *args, [True, True, True], "auto")
    xd, wd, bd = (t.double().requires_grad_() for t in (x, wt, b))
    ref = F.conv2d(xd, wd, bd, stride, pad, dil)
    ref_gx, ref_gw = torch.autograd.grad(ref, (xd, wd), gy.double())
    for got, want in ((y, ref), (gx, ref_gx), (gw, ref_gw)):
        assert_rel_close(got, want, 1e-4 if dtype == torch.float32 else 1e-10)
    for i, (got, (_, algo)) in enumerate(zip((y, gx, gw), expect)):
        if algo is None:
            continue
        if i == 0:
            want = ops.corr2d(x, wt, b, *args, algo)
        elif algo == "flipped":  # the forward's tiled kernel over dY, weights flipped and transposed
            tpad = dil * (k - 1) - pad
            want = ops.corr2d(gy, wt.flip(2, 3).transpose(0, 1).contiguous(), None, [1, 1], [tpad] * 4, [dil] * 2,
                              1, "implicit_gemm")
        else:
            want = ops.corr2d_backward(gy, x, wt, *args, [i == 1, i == 2, False], algo)[i - 1]
        assert torch.equal(got, want), (i, algo)
    if dtype == torch.float64 and h <= 8:  # the op's registration on these paths (fake kernel, autograd)
        torch.library.opcheck(ops.corr2d.default, (x, wt, b, *args, "auto"))
        torch.library.opcheck(ops.corr2d_backward.default, (gy, x, wt, *args, [True, True, True], "auto"))


def test_blas_rate_and_its_overrides():
    from convkit import _C
    try:
        _C.set_blas_preference("measure")
        r = _C.blas_rate()
        assert r["source"] == "measured" and 0.05 < r["share"] < 4 and r["preferred"] == (r["share"] >= 0.55)
        for mode, preferred in (("avoid", False), ("prefer", True)):
            _C.set_blas_preference(mode)
            assert _C.blas_rate() == {"share": r["share"], "preferred": preferred, "source": mode}
        with pytest.raises(ValueError, match="mode must be 'prefer', 'avoid' or 'measure', got 'fast'"):
            _C.set_blas_preference("fast")
    finally:
        _C.set_blas_preference("measure")
    # the environment variable: read once, the first time a plan needs it; a bad value names it
    code = ("import torch, convkit; from convkit import _C\n"
            "e = convkit.explain((1, 64, 16, 16), (128, 64, 3, 3), padding=1).backends['compiled']['forward']\n"
            "print(_C.blas_rate(False)['source'], 'BLAS' in e)")
    run = lambda v: subprocess.run([sys.executable, "-c", code], env={**os.environ, "CONVKIT_BLAS": v},  # noqa: E731
                                   capture_output=True, text=True)
    out = run("avoid")
    assert out.returncode == 0 and out.stdout.split() == ["avoid", "False"], out.stderr
    out = run("prefer")
    assert out.returncode == 0 and out.stdout.split() == ["prefer", "True"], out.stderr
    out = run("sometimes")
    assert out.returncode != 0 and "CONVKIT_BLAS must be 'prefer', 'avoid' or 'measure'" in out.stderr


@pytest.mark.usefixtures("blas_prefer")
def test_columns_blas_where_winograd_has_few_tiles_per_image():
    # 16 tiles per image for 384 x 384 x 9 weights (R9/R11's kind in small): not Winograd (its transformed
    # weights cost more than it saves), and where BLAS is fast auto takes the column-block BLAS path
    x = rand(2, 384, 16, 16, seed=61, dtype=torch.float32)
    wt = rand(384, 384, 3, 3, seed=62, dtype=torch.float32)
    assert not winograd_rule(2, 384, 384, 16, 16)
    e = convkit.explain(tuple(x.shape), tuple(wt.shape), padding=1)
    assert "forward_columns_blas" in e.backends["compiled"]["forward"]
    assert "grad_input_columns_blas" in e.backends["compiled"]["grad_input"]  # the same rule for grad_input
    y = ops.corr2d(x, wt, None, [1, 1], [1] * 4, [1, 1], 1, "auto")
    assert not torch.equal(y, ops.corr2d(x, wt, None, [1, 1], [1] * 4, [1, 1], 1, "winograd"))
    assert_rel_close(y, F.conv2d(x.double(), wt.double(), None, 1, 1))
    gy = rand(*y.shape, seed=63, dtype=torch.float32)
    gx = ops.corr2d_backward(gy, x, wt, [1, 1], [1] * 4, [1, 1], 1, [True, False, False], "auto")[0]
    gx_wino = ops.corr2d_backward(gy, x, wt, [1, 1], [1] * 4, [1, 1], 1, [True, False, False], "winograd")[0]
    assert not torch.equal(gx, gx_wino)
    xd = x.double().requires_grad_()
    (want,) = torch.autograd.grad(F.conv2d(xd, wt.double(), None, 1, 1), (xd,), gy.double())
    assert_rel_close(gx, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,o,h,k,stride,groups", [(3, 3, 40, 112, 7, 2, 1), (2, 8, 48, 48, 3, 1, 2),
                                                     (1, 2, 20, 40, 3, 1, 1)])
def test_grad_weight_position_slabs(n, c, o, h, k, stride, groups, dtype):
    # many positions per weight (>= 64 K) and a small gw: grad_weight_tiled splits the positions into slabs
    # with their own accumulators (R1 at N=8); the last 8-row panel of k runs past K (147, 36 and 18 rows)
    x = rand(n, c, h, h, seed=71, dtype=dtype)
    wt = rand(o, c // groups, k, k, seed=72, dtype=dtype).requires_grad_()
    e = convkit.explain(tuple(x.shape), tuple(wt.shape), stride=stride, padding=k // 2, groups=groups,
                        algo="implicit_gemm")
    assert "slabs of positions" in e.backends["compiled"]["grad_weight"]
    y = convkit.corr2d(x, wt, None, stride, k // 2, groups=groups, backend="compiled", algo="implicit_gemm")
    gy = rand(*y.shape, seed=73, dtype=dtype)
    (gw,) = torch.autograd.grad(y, (wt,), gy)
    wd = wt.detach().double().requires_grad_()
    ref = F.conv2d(x.double(), wd, None, stride, k // 2, groups=groups)
    (want,) = torch.autograd.grad(ref, (wd,), gy.double())
    if dtype == torch.float64:
        torch.testing.assert_close(gw, want, rtol=1e-12, atol=1e-11)
    else:
        assert_rel_close(gw, want)


# The channel-lanes grad_weight (direct_oc.cpp grad_weight_oc) over its position blocks and task kinds:
# several chunks of images (partial sums between them), one image split into blocks of rows (d panel over
# 384 KiB), tasks of one tap or of every tap of a (channel block, channel tile) pair (8 pairs per thread or
# more; the thread count changes the kind), the taps stored by one transpose (3x3 fp32) or scalar (5x5, fp64),
# and 2- or 4-vector tiles. Forced "direct" against the float64 reference, 1 and 2 threads bitwise equal.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,o,h,k,stride,pad,dil", [
    (2, 64, 64, 40, 3, 1, 1, 1),    # 1600 positions x 4 vectors: two row blocks per image; 11 pairs (every tap
                                    # per task at 1 thread, single taps at 2)
    (7, 100, 48, 20, 3, 1, 1, 1),   # 3 images per chunk (3, 3, 1); 17 pairs: every tap per task at 2 threads
    (3, 200, 32, 12, 3, 1, 1, 1),   # 2 x 14 tile, 15 pairs: every tap at 1 thread, single taps at 2
    (3, 120, 40, 12, 5, 1, 2, 1),   # 5x5: 25 taps stored one by one
    (2, 50, 70, 17, 3, 2, 2, 2),    # row stride 2, dilation 2, an odd channel count and a partial channel block
    (0, 40, 48, 9, 3, 1, 1, 1),     # no images: zeros (gw comes from an uninitialised buffer)
])
def test_channel_lanes_grad_weight_blocks(threads, dtype, n, c, o, h, k, stride, pad, dil):
    x, wt = rand(n, c, h, h, seed=91, dtype=dtype), rand(o, c, k, k, seed=92, dtype=dtype)
    args = ([stride, 1], [pad] * 4, [dil] * 2, 1)
    e = convkit.explain((n, c, h, h), (o, c, k, k), stride=(stride, 1), padding=pad, dilation=dil, dtype=dtype,
                        algo="direct")
    assert "output channels as vector lanes, x read in place" in e.backends["compiled"]["grad_weight"]
    y = F.conv2d(x, wt, None, (stride, 1), pad, dil)
    gy = rand(*y.shape, seed=93, dtype=dtype)
    got = []
    for nt in (1, 2):
        torch.set_num_threads(nt)
        got.append(ops.corr2d_backward(gy, x, wt, *args, [False, True, False], "direct")[1])
    assert torch.equal(got[0], got[1])
    xd, wd = x.double().requires_grad_(), wt.double().requires_grad_()
    ref = torch.autograd.grad(F.conv2d(xd, wd, None, (stride, 1), pad, dil), wd, gy.double())[0]
    assert_rel_close(got[1], ref, 1e-4 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,o,h,w", [
    # tile counts per product at 1 thread (fp32 L = 16, fp64 L = 8; blocks of 3, 2 and 1 vectors, then leftovers)
    (1, 3, 5, 4, 4),       # one tile, 5 output channels: the leftover-tile kernel with one masked vector of channels
    (1, 20, 17, 10, 11),   # 9 tiles: leftovers only (fp64: one vector + 1); 17 channels: a full vector plus one lane
    (2, 9, 33, 18, 13),    # 2 x 20 = 40 tiles in one chunk: a 2-vector block + 8 (fp64: 24 + 16); 33 channels
    (1, 16, 40, 26, 26),   # 49 tiles: a 3-vector block + 1 (fp64: 2 x 24 + 1); 40 channels: 8-row blocks, 2L + 8 lanes
    (3, 5, 48, 30, 31),    # 3 x 64 tiles in pieces of 136 and 56: 2 x 48 + 32 + 8 and 48 + 8 (fp64: 2 x 96, 4 x 24)
])
def test_winograd_products_every_tile_remainder(threads, n, c, o, h, w, dtype):
    # Winograd's own products (winograd.cpp product): register blocks of 3, 2 and 1 vectors of tiles, the last
    # nt % L tiles with output channels as lanes (masked at the last channel vector), against float64; at one
    # thread, so that the tile counts above are the ones the products see
    torch.set_num_threads(1)
    x, wt = rand(n, c, h, w, seed=81, dtype=dtype), rand(o, c, 3, 3, seed=82, dtype=dtype)
    b = rand(o, seed=83, dtype=dtype)
    y = ops.corr2d(x, wt, b, [1, 1], [1] * 4, [1, 1], 1, "winograd")
    assert_rel_close(y, F.conv2d(x.double(), wt.double(), b.double(), 1, 1), rel=1e-4 if dtype == torch.float32 else 1e-10)
    gy = rand(*y.shape, seed=84, dtype=dtype)
    gx = ops.corr2d_backward(gy, x, wt, [1, 1], [1] * 4, [1, 1], 1, [True, False, False], "winograd")[0]
    xd = x.double().requires_grad_()
    (want,) = torch.autograd.grad(F.conv2d(xd, wt.double(), None, 1, 1), (xd,), gy.double())
    assert_rel_close(gx, want, rel=1e-4 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("algo", ["implicit_gemm", "im2col"])
@pytest.mark.parametrize("n,c,o,h,w,k,pad,dil", [
    (3, 8, 24, 3, 3, 3, (1, 1, 1, 1), 1),     # 9 positions per image: one vector spans several images
    (2, 12, 20, 5, 9, 3, (1, 1, 1, 1), 1),    # rows of 9 cut at vector and tile edges
    (2, 8, 16, 28, 27, 3, (2, 0, 1, 1), 1),   # asymmetric padding that keeps the size
    (3, 6, 16, 12, 12, 3, (2, 2, 2, 2), 2),   # dilation 2
    (2, 4, 16, 6, 6, 5, (2, 2, 2, 2), 1),     # 5x5
    (3, 40, 48, 7, 5, 3, (0, 2, 2, 0), 1),    # padding all on one side per axis
    (5, 64, 72, 7, 7, 3, (1, 1, 1, 1), 1),    # R11-like: forward_tiled's split schedule, a tile cut between threads
])
def test_same_size_column_packing(threads, n, c, o, h, w, k, pad, dil, algo, dtype):
    # stride 1 with the output the input's size: implicit GEMM's column tiles are masked vector loads of the
    # flattened image (corr2d.cpp pack_cols_same) in the forward and grad_weight (its grad_input is
    # grad_input_tiled's col2im; "auto"'s flipped-weight grad_input packs dY the same way); against float64,
    # identical at 1, 2 and 3 threads. im2col (ATen's im2col and BLAS) is the reference family alongside.
    x, wt = rand(n, c, h, w, seed=91, dtype=dtype), rand(o, c, k, k, seed=92, dtype=dtype)
    b, gy = rand(o, seed=93, dtype=dtype), rand(n, o, h, w, seed=94, dtype=dtype)
    args = ([1, 1], list(pad), [dil, dil], 1)
    runs = []
    for nt in (1, 2, 3):
        torch.set_num_threads(nt)
        y = ops.corr2d(x, wt, b, *args, algo)
        runs.append((y, *ops.corr2d_backward(gy, x, wt, *args, [True, True, False], algo)[:2]))
    for other in runs[1:] if algo == "implicit_gemm" else []:
        for name, r1, r2 in zip(("output", "grad_input", "grad_weight"), runs[0], other):
            assert torch.equal(r1, r2), f"{name} differs with the thread count"
    xd, wd = x.double().requires_grad_(), wt.double().requires_grad_()
    ref = F.conv2d(F.pad(xd, (pad[2], pad[3], pad[0], pad[1])), wd, b.double(), 1, 0, dil)
    assert ref.shape == runs[0][0].shape
    gx_ref, gw_ref = torch.autograd.grad(ref, (xd, wd), gy.double())
    rel = 1e-4 if dtype == torch.float32 else 1e-10
    for got, want in zip(runs[0], (ref, gx_ref, gw_ref)):
        assert_rel_close(got, want, rel)


# "auto"'s grad_input as forward_tiled over dY with the flipped, transposed weights (GradInput::FlippedTiled;
# forced implicit_gemm runs grad_input_tiled's col2im instead, so only "auto" reaches it): with stride 1 and
# "same" padding the transposed problem keeps the size too, so dY's column tiles are packed by
# pack_cols_same. BLAS avoided so that the plan does not depend on the measured BLAS rate; the plan is
# asserted, the result is identical at 1, 2 and 3 threads and matches float64.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,o,h,w,k,pad,dil", [
    (5, 64, 72, 7, 7, 3, (1, 1, 1, 1), 1),      # R11-like: 49 positions per image, tiles across images
    (2, 96, 80, 9, 9, 3, (1, 1, 1, 1), 1),      # rows of 9 cut at vector edges
    (2, 128, 96, 6, 6, 3, (2, 2, 2, 2), 2),     # dilation 2
    (2, 128, 128, 7, 7, 5, (2, 2, 2, 2), 1),    # 5x5
    (4, 128, 128, 5, 9, 3, (1, 1, 1, 1), 1),    # 5 x 9 maps
    (2, 256, 128, 4, 4, 3, (1, 1, 1, 1), 1),    # 16 positions: one fp32 vector per image
])
@pytest.mark.usefixtures("blas_avoid")
def test_flipped_weight_grad_input(threads, n, c, o, h, w, k, pad, dil, dtype):
    plan = convkit._C.corr2d_plan((n, c, h, w), (o, c, k, k), (1, 1), pad, (dil, dil), 1, "auto", dtype.itemsize)
    assert "of the flipped weights (forward_tiled)" in plan[1][0], plan
    x, wt = rand(n, c, h, w, seed=95, dtype=dtype), rand(o, c, k, k, seed=96, dtype=dtype)
    gy = rand(n, o, h, w, seed=97, dtype=dtype)
    args = ([1, 1], list(pad), [dil, dil], 1)
    runs = []
    for nt in (1, 2, 3):
        torch.set_num_threads(nt)
        runs.append(ops.corr2d_backward(gy, x, wt, *args, [True, False, False], "auto")[0])
    for other in runs[1:]:
        assert torch.equal(runs[0], other), "grad_input differs with the thread count"
    xd = x.double().requires_grad_()
    ref = F.conv2d(F.pad(xd, (pad[2], pad[3], pad[0], pad[1])), wt.double(), None, 1, 0, dil)
    (want,) = torch.autograd.grad(ref, (xd,), gy.double())
    assert_rel_close(runs[0], want, 1e-4 if dtype == torch.float32 else 1e-10)


# The stride-phase forward (winograd_s2.cpp, forced "winograd" on stride 2 with a kernel 5 to 8 wide): several
# pieces of output rows per thread (many channels: small pieces), positions cut between threads mid-row, output
# rows not a multiple of 4 wide (copied position by position), a partial last block of positions and of output
# channels, tall and short kernels, no input channels. Against float64; identical at 1, 2 and 3 threads
# (every output is computed the same way whatever the cut); the plan names the path.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,c,o,h,w,k,pad", [
    (1, 3, 64, 58, 58, (7, 7), (3, 3, 3, 3)),     # R1's kind: 29 x 8 tiles
    (2, 16, 9, 40, 120, (7, 7), (3, 3, 3, 3)),    # 16 channels: pieces of 6 rows, 20 x 15 tiles per image
    (3, 3, 17, 23, 37, (7, 7), (1, 2, 0, 3)),     # 17 columns (4T = 20), odd sizes, uneven padding
    (1, 5, 8, 20, 30, (8, 8), (0, 0, 0, 0)),      # 8x8: 4 column taps in both phases, 4 row taps
    (2, 4, 16, 15, 64, (3, 6), (1, 1, 1, 1)),     # 3 rows (J = 2, 1), 6 wide
    (1, 1, 1, 8, 8, (7, 5), (0, 0, 0, 0)),        # one output position
    (2, 2, 6, 9, 20, (1, 5), (0, 0, 2, 2)),       # one row tap: no odd row phase (J = 1, 0)
    (2, 3, 5, 10, 17, (2, 7), (1, 0, 3, 3)),      # two row taps (J = 1, 1)
    (2, 0, 5, 11, 11, (7, 7), (3, 3, 3, 3)),      # no input channels: the bias
])
def test_winograd_s2_forward(threads, n, c, o, h, w, k, pad, dtype):
    plan = convkit._C.corr2d_plan((n, c, h, w), (o, c, *k), (2, 2), pad, (1, 1), 1, "winograd", dtype.itemsize)
    assert plan[0][0].startswith("stride phases: Winograd F(4, 4)"), plan
    x, wt, b = rand(n, c, h, w, seed=61, dtype=dtype), rand(o, c, *k, seed=62, dtype=dtype), rand(o, seed=63,
                                                                                                   dtype=dtype)
    runs = []
    for nt in (1, 2, 3):
        torch.set_num_threads(nt)
        runs.append(ops.corr2d(x, wt, b, [2, 2], list(pad), [1, 1], 1, "winograd"))
    for other in runs[1:]:
        assert torch.equal(runs[0], other), "the output differs with the thread count"
    xd = F.pad(x.double(), (pad[2], pad[3], pad[0], pad[1]))
    ref = F.conv2d(xd, wt.double(), b.double(), 2) if c else b.double().view(1, o, 1, 1).expand_as(runs[0])
    assert_rel_close(runs[0], ref, 1e-5 if dtype == torch.float32 else 1e-12)


def test_winograd_s2_auto():
    # "auto" takes the stride-phase forward for float32 stems (few input channels, 7x7 or 8x8, output rows a
    # multiple of 4 wide, >= 16 output channels) and keeps the direct paths elsewhere; the backward is never it
    def fwd(c=3, o=64, h=224, k=7, itemsize=4, groups=1):
        plan = convkit._C.corr2d_plan((1, c, h, h), (o, c // groups, k, k), (2, 2), (3, 3, 3, 3), (1, 1), groups,
                                      "auto", itemsize)
        assert "stride phases" not in plan[1][0] + plan[2][0], plan
        return plan[0][0].startswith("stride phases")
    assert fwd() and fwd(k=8) and fwd(c=4)
    assert not fwd(itemsize=8)                   # float64: the direct path (measured for float32 only)
    assert not fwd(c=8) and not fwd(o=8)         # more input channels, fewer outputs
    assert not fwd(h=226)                        # 113 output columns
    assert not fwd(k=5) and not fwd(c=4, groups=2)

