"""The compiled backend as real torch ops: opcheck, torch.compile, thread-count determinism, direct-call
errors, and the behaviour when the extension is missing."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import cases

import convkit
from cases import CONV_CASES, POOL_CASES
from conftest import COMPILED_SKIP
from convkit.functional import _pair

pytestmark = COMPILED_SKIP
ops = torch.ops.convkit if hasattr(torch.ops, "convkit") else None
ZERO_PAD_CONV = [c for c in CONV_CASES if c.padding_mode == "zeros"]


def conv_op_args(case, requires_grad=True):
    return cases.conv_op_args(case, requires_grad=requires_grad)


def pool_op_args(case):
    x = case.inputs().requires_grad_()
    two = lambda v: list(_pair("", v, minimum=0))  # noqa: E731
    return (x, case.mode, two(case.kernel), two(case.stride), two(case.padding), two(case.dilation),
            case.ceil_mode, case.count_include_pad, case.divisor_override)


@pytest.mark.parametrize("case", ZERO_PAD_CONV, ids=lambda c: c.id)
def test_opcheck_corr2d(case):
    torch.library.opcheck(ops.corr2d.default, conv_op_args(case))


@pytest.mark.parametrize("mask", [[True, True, True], [True, False, False], [False, True, False], [False, False, True]])
@pytest.mark.parametrize("case", ZERO_PAD_CONV[:8], ids=lambda c: c.id)
def test_opcheck_corr2d_backward(case, mask):
    x, w, b, *conf = conv_op_args(case)
    gy = torch.randn_like(ops.corr2d(x, w, b, *conf)).requires_grad_()
    torch.library.opcheck(ops.corr2d_backward.default, (gy, x, w, *conf, mask))


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.id)
def test_opcheck_pool2d_and_backward(case):
    args = pool_op_args(case)
    torch.library.opcheck(ops.pool2d.default, args)
    y, idx = ops.pool2d(*args)
    gy = torch.randn_like(y).requires_grad_()
    torch.library.opcheck(ops.pool2d_backward.default, (gy, args[0], idx, *args[1:]))


def test_double_backward_through_ops():
    case = CONV_CASES[4]  # stride 2, padding 1
    x, w, b, *conf = conv_op_args(case)
    f = lambda x, w, b: ops.corr2d(x, w, b, *conf)  # noqa: E731
    assert torch.autograd.gradgradcheck(f, (x, w, b))
    args = pool_op_args(POOL_CASES[1])
    assert torch.autograd.gradgradcheck(lambda x: ops.pool2d(x, *args[1:])[0], (args[0],))


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool2d_backward_node_keeps_the_autograd_contract(mode):
    # pool2d's backward is a hand-written Node (autograd.cpp), not a torch::autograd::Function: it must still
    # free its saved tensors after a backward, go through saved-tensor hooks, and work under anomaly mode.
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(tuple(t.shape)) or t, lambda t: t):
        y = convkit.pool2d(x, 3, 2, 1, mode=mode, backend="compiled")
    assert y.grad_fn.name() == "Pool2dBackward"
    assert y.grad_fn.next_functions[0][0] is not None  # the edge to x's AccumulateGrad
    assert (2, 3, 7, 6) in packed and (len(packed) == 2 if mode == "max" else True)
    y.sum().backward()
    ref = torch.autograd.grad((F.max_pool2d if mode == "max" else F.avg_pool2d)(x, 3, 2, 1).sum(), x)[0]
    torch.testing.assert_close(x.grad, ref)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()
    with torch.autograd.detect_anomaly():
        g, = torch.autograd.grad(convkit.pool2d(x, 2, 1, mode=mode, backend="compiled").sum(), x)
    assert g.shape == x.shape


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            convkit.nn.Conv2d(1, 4, 5, padding=2, backend="compiled"), torch.nn.ReLU(),
            convkit.nn.MaxPool2d(2, backend="compiled"),
            convkit.nn.Conv2d(4, 8, 3, padding="same", stride=2, backend="compiled"), torch.nn.Sigmoid(),
            convkit.nn.AvgPool2d(2, ceil_mode=True, backend="compiled"), torch.nn.Flatten(),
            torch.nn.Linear(8 * 2 * 2, 3))

    def forward(self, x):
        return self.net(x)


def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = SmallCNN().double()
    x = torch.randn(4, 1, 14, 14, dtype=torch.float64)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out_c = compiled(x)
    grads_c = torch.autograd.grad(out_c.square().sum(), list(model.parameters()))
    out_e = model(x)
    grads_e = torch.autograd.grad(out_e.square().sum(), list(model.parameters()))
    torch.testing.assert_close(out_c, out_e)
    for a, b in zip(grads_c, grads_e):
        torch.testing.assert_close(a, b)


@COMPILED_SKIP
def test_backend_choice_for_cuda_traces_under_torch_compile():
    """convkit.functional asks compiled.supports(device, dtype) inside compiled code. For a CUDA device it used to
    call convkit._C.build_info(), which dynamo cannot trace: fullgraph=True failed on the GPU machine. The answer is
    now read once at import; this checks it from here, without a GPU."""
    from convkit.backends import compiled as backend
    f = torch.compile(lambda x: x + backend.supports(torch.device("cuda"), torch.float32), fullgraph=True,
                      backend="eager")
    want = float(bool(backend.build_info().get("cuda")))
    assert f(torch.zeros(2)).tolist() == [want, want]


def test_torch_compile_inductor():
    torch.manual_seed(0)
    model = SmallCNN()
    x = torch.randn(2, 1, 14, 14)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))


@pytest.fixture
def threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("kw", [dict(padding=1), dict(stride=2, padding=(1, 0, 2, 1), groups=2), dict(k=1, groups=2),
                                dict(dilation=2, padding=2)])
def test_thread_counts_give_identical_results(threads, kw):
    kw = dict(kw)
    k = kw.pop("k", 3)  # k=1: the pointwise path (BLAS products in fixed-size tasks)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 23, 19, generator=g, requires_grad=True)
    w = torch.randn(12 if k == 3 else 96, 8 // kw.get("groups", 1), k, k, generator=g, requires_grad=True)
    b = torch.randn(w.shape[0], generator=g, requires_grad=True)
    results = []
    for n in (1, 2):
        torch.set_num_threads(n)
        y = convkit.corr2d(x, w, b, backend="compiled", **kw)
        grads = torch.autograd.grad(y, (x, w, b), torch.ones_like(y))
        p, i = convkit.pool2d(x, 3, 2, 1, return_indices=True, backend="compiled")
        a = convkit.pool2d(x, 3, 2, 1, mode="avg", backend="compiled")
        results.append((y, *grads, p, i, a))
    for r1, r2 in zip(*results):
        assert torch.equal(r1, r2)


@pytest.mark.parametrize("call,match", [
    (lambda: ops.corr2d(torch.randn(2, 3, 5), torch.randn(1, 3, 3, 3), None, [1, 1], [0, 0, 0, 0], [1, 1], 1),
     "input must be 4-d"),
    (lambda: ops.corr2d(torch.randn(1, 3, 5, 5), torch.randn(1, 2, 3, 3), None, [1, 1], [0, 0, 0, 0], [1, 1], 1),
     "input has 3 channels"),
    (lambda: ops.corr2d(torch.randn(1, 3, 5, 5), torch.randn(1, 3, 3, 3), None, [0, 1], [0, 0, 0, 0], [1, 1], 1),
     "stride must be 2 positive"),
    (lambda: ops.corr2d(torch.randn(1, 3, 5, 5), torch.randn(1, 3, 3, 3), None, [1, 1], [0, -1, 0, 0], [1, 1], 1),
     "padding must be 4 non-negative"),
    (lambda: ops.corr2d(torch.randn(1, 3, 2, 2), torch.randn(1, 3, 3, 3), None, [1, 1], [0, 0, 0, 0], [1, 1], 1),
     "larger than the padded input"),
    (lambda: ops.corr2d(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), torch.randn(3), [1, 1], [0, 0, 0, 0],
                        [1, 1], 1), "bias must have shape"),
    (lambda: ops.corr2d_backward(torch.randn(1, 2, 4, 4), torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), [1, 1],
                                 [0, 0, 0, 0], [1, 1], 1, [True, True, True]), "grad_output must have shape"),
    (lambda: ops.pool2d(torch.randn(1, 1, 4, 4), "min", [2, 2], [2, 2], [0, 0], [1, 1], False, True, None),
     "mode must be 'max' or 'avg'"),
    (lambda: ops.pool2d(torch.randn(1, 1, 4, 4), "max", [2, 2], [2, 2], [2, 0], [1, 1], False, True, None),
     "padding must be at most half"),
    (lambda: ops.pool2d_backward(torch.randn(1, 1, 2, 2), torch.randn(1, 1, 4, 4),
                                 torch.full((1, 1, 2, 2), 99, dtype=torch.long), "max", [2, 2], [2, 2], [0, 0], [1, 1],
                                 False, True, None), "index 99 out of range"),
    # channels_last: the scatter checks a pixel's indices (all channels) before it writes any of them
    (lambda: ops.pool2d_backward(torch.randn(1, 20, 2, 2).contiguous(memory_format=torch.channels_last),
                                 torch.randn(1, 20, 4, 4).contiguous(memory_format=torch.channels_last),
                                 torch.zeros(1, 20, 2, 2, dtype=torch.long).index_fill_(1, torch.tensor([17]), -3)
                                 .contiguous(memory_format=torch.channels_last), "max", [2, 2], [2, 2], [0, 0],
                                 [1, 1], False, True, None), "index -3 out of range"),
    (lambda: ops.pool2d_backward(torch.randn(8, 3, 2, 2).contiguous(memory_format=torch.channels_last),
                                 torch.randn(8, 3, 4, 4).contiguous(memory_format=torch.channels_last),
                                 torch.full((8, 3, 2, 2), 16, dtype=torch.long)
                                 .contiguous(memory_format=torch.channels_last), "max", [2, 2], [2, 2], [0, 0],
                                 [1, 1], False, True, None), "index 16 out of range"),
])
def test_direct_op_calls_check_their_arguments(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_missing_extension_keeps_import_working():
    code = (
        "import sys; sys.modules['convkit._C'] = None\n"
        "import torch, convkit\n"
        "assert 'compiled' not in convkit.available_backends()\n"
        "from convkit.functional import resolve_backend\n"
        "assert resolve_backend('auto', torch.device('cpu'), torch.float32) == 'unfold'\n"
        "assert not convkit.info()['compiled']['built']\n"
        "try:\n"
        "    convkit.corr2d(torch.ones(3, 3), torch.ones(2, 2), backend='compiled')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert r.returncode == 0, r.stderr
    assert "importing convkit._C failed" in r.stdout and "--no-build-isolation" in r.stdout


def test_info_reports_the_build():
    d = convkit.info()
    assert d["compiled"]["built"] and d["compiled"]["isa"] in ("AVX512", "AVX2", "SSE4.2", "baseline")
    assert d["compiled"]["cuda"] is False or torch.cuda.is_available()
    assert "compiled" in d["backends"]["cpu"]


@pytest.mark.parametrize("shape", [
    # (N, C, H, W, O, k, stride, pad): few position tiles and >= 4 output-channel blocks take the
    # shared-pack schedule, with output tiles that straddle images; the last one is pointwise.
    (1, 64, 7, 7, 64, 3, 1, 1),
    (3, 48, 5, 7, 40, 3, 1, 1),
    (2, 32, 9, 6, 33, 3, 2, 0),
    (4, 40, 23, 23, 32, 1, 1, 0),
])
def test_shared_schedule_and_straddling_tiles(shape):
    n, c, h, w, o, k, s, p = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    wt = torch.randn(o, c, k, k, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(o, generator=g, dtype=torch.float64, requires_grad=True)
    y = convkit.corr2d(x, wt, b, s, p, backend="compiled")
    ref = torch.nn.functional.conv2d(x, wt, b, s, p)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for a, r in zip(torch.autograd.grad(y, (x, wt, b), gy), torch.autograd.grad(ref, (x, wt, b), gy)):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [
    # (N, C, H, W, O, kernel, stride, pad, dilation, groups): grad_weight takes the positions-as-lanes kernel
    # for <= 16 output channels per group (LeNet, depthwise, tails) and the tiled GEMM above that.
    (3, 1, 28, 28, 6, 5, 1, 2, 1, 1),      # LeNet conv1: C = 1, 25 rows
    (2, 6, 14, 14, 16, 5, 1, 0, 1, 1),     # LeNet conv2: Og = 16, 150 rows, a partial last tile
    (2, 8, 11, 13, 8, 3, 1, 1, 1, 8),      # depthwise
    (1, 6, 9, 10, 15, (3, 2), 2, 1, 2, 3),  # groups, stride, dilation, odd Og and rows
    (2, 5, 40, 33, 7, 3, 1, 1, 1, 1),      # several position chunks per image
    (2, 6, 8, 9, 17, 3, 1, 1, 1, 1),       # just above the threshold: tiled
    (1, 4, 7, 7, 34, 3, (2, 1), 1, 1, 2),  # tiled, groups
])
def test_grad_weight_paths(shape, dtype):
    n, c, h, w, o, k, s, p, d, groups = shape
    k = (k, k) if isinstance(k, int) else k
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype, requires_grad=True)
    wt = torch.randn(o, c // groups, *k, generator=g, dtype=dtype, requires_grad=True)
    y = convkit.corr2d(x, wt, None, s, p, d, groups, backend="compiled")
    ref = torch.nn.functional.conv2d(x, wt, None, s, p, d, groups)
    gy = torch.randn(ref.shape, generator=g, dtype=dtype)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    for a, r in zip(torch.autograd.grad(y, (x, wt), gy), torch.autograd.grad(ref, (x, wt), gy)):
        torch.testing.assert_close(a, r, **tol)


# --------------------------------------------------------------------------- the eager entry points
def test_eager_entry_points_take_only_what_they_can_run():
    from convkit import functional
    ck = functional._CK
    x, w = torch.randn(2, 3, 9, 10), torch.randn(4, 3, 3, 3)
    ref = torch.nn.functional.conv2d(x, w, None, 1, 1)
    torch.testing.assert_close(ck.corr2d_eager(x, w, None, 1, 1, 1, 1), ref)
    torch.testing.assert_close(ck.corr2d_eager(x, w, None, (1, 1), (1, 1, 1, 1), [1, 1], 1), ref)
    torch.testing.assert_close(ck.pool2d_eager(x, "max", 2, None, 0, 1, False, True, None),
                               torch.nn.functional.max_pool2d(x, 2))
    refused = [
        lambda: ck.corr2d_eager(x, w, None, 1, "same", 1, 1),            # depends on the input's size
        lambda: ck.corr2d_eager(x, w, None, True, 1, 1, 1),              # bool is not an int here
        lambda: ck.corr2d_eager(x, w, None, 2.0, 1, 1, 1),
        lambda: ck.corr2d_eager(x, w, None, 1, (0, 1, -1, 0), 1, 1),     # the kernel's checks refuse it
        lambda: ck.corr2d_eager(x.int(), w, None, 1, 1, 1, 1),
        lambda: ck.corr2d_eager(x[0], w, None, 1, 1, 1, 1),              # 3-d: the rank rules are Python's
        lambda: ck.pool2d_eager(x, "max", 2, None, 0, 1, 0, True, None),  # ceil_mode must be a bool
        lambda: ck.pool2d_eager(x, "max", 2, None, 0, 1, False, True, 3),  # divisor_override is avg's
        lambda: ck.pool2d_eager(x, "avg", 2, None, 0, 1, False, True, 0),
        lambda: ck.pool2d_eager(x, "min", 2, None, 0, 1, False, True, None),
        lambda: ck.pool2d_eager(x, "max", 20, None, 0, 1, False, True, None),
    ]
    for call in refused:
        assert call() is NotImplemented
    xg = x.clone().requires_grad_()
    assert ck.pool2d_eager(xg, "min", 2, None, 0, 1, False, True, None) is NotImplemented  # also with autograd
    assert ck.corr2d_eager(xg, w, None, 1, (0, 1, -1, 0), 1, 1) is NotImplemented


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_eager_entry_points_record_autograd(mode):
    # with a tensor that requires grad they call the op through the dispatcher: the graph is the C++ autograd's
    from convkit import functional
    ck = functional._CK
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    y = ck.corr2d_eager(x, w, b, 1, (1, 0, 2, 1), 1, 1)
    assert "Corr2dFunction" in y.grad_fn.name()
    p = ck.pool2d_eager(y, mode, 2, None, 0, 1, True, False, None)
    assert p.grad_fn is not None
    ref_y = F.conv2d(F.pad(x, (2, 1, 1, 0)), w, b)
    ref_p = F.max_pool2d(ref_y, 2, ceil_mode=True) if mode == "max" else \
        F.avg_pool2d(ref_y, 2, ceil_mode=True, count_include_pad=False)
    torch.testing.assert_close(p, ref_p)
    gp = torch.randn_like(p)
    for a, r in zip(torch.autograd.grad(p, (x, w, b), gp), torch.autograd.grad(ref_p, (x, w, b), gp)):
        torch.testing.assert_close(a, r)
    assert ck.corr2d_eager(x.detach(), w.detach(), None, 1, 1, 1, 1).grad_fn is None
    with torch.no_grad():  # no gradient needed: the kernel directly, no graph
        assert ck.corr2d_eager(x, w, b, 1, 1, 1, 1).grad_fn is None
        assert ck.pool2d_eager(x, mode, 2, None, 0, 1, False, True, None).grad_fn is None


def test_eager_entry_points_are_seen_by_dispatch_modes():
    # a TorchDispatchMode (FlopCounterMode, logging, ...) sees convkit's ops also on the fast path
    from torch.utils._python_dispatch import TorchDispatchMode
    from convkit import functional
    ck = functional._CK

    class Log(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    x, w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    with Log() as log:
        ck.corr2d_eager(x, w, None, 1, 1, 1, 1)
        ck.pool2d_eager(x, "avg", 2, None, 0, 1, False, True, None)
    assert log.ops == ["convkit.corr2d.default", "convkit.pool2d.default"]


def test_public_api_uses_the_eager_entry_points_with_and_without_autograd(monkeypatch):
    from convkit import functional
    calls = []
    real = functional._CK

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    monkeypatch.setattr(functional, "_CK", Spy())
    x, w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    convkit.corr2d(x, w)
    convkit.max_pool2d(x, 2)
    assert calls == ["corr2d_eager", "pool2d_eager"]
    calls.clear()
    wg = w.clone().requires_grad_()
    y = convkit.corr2d(x, wg)  # with autograd: the op through the dispatcher, the graph is recorded
    assert calls == ["corr2d_eager"]
    assert y.grad_fn is not None
    with torch.no_grad():
        assert convkit.corr2d(x, wg).grad_fn is None
