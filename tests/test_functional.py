"""convkit.functional: the book's golden values, the rank rules, and conformance with torch.nn.functional."""
import pytest
import torch
import torch.nn.functional as F

import convkit
from cases import CONV_CASES, POOL_CASES
from conftest import BACKENDS

X3 = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])


# --------------------------------------------------------------------------- d2l golden values
@pytest.mark.parametrize("backend", BACKENDS)
def test_d2l_corr2d(backend):
    y = convkit.corr2d(X3, torch.tensor([[0, 1], [2, 3]]), backend=backend)
    assert y.dtype == torch.get_default_dtype()
    torch.testing.assert_close(y, torch.tensor([[19.0, 25.0], [37.0, 43.0]]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_d2l_multi_in_and_out(backend):
    x = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    k = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    torch.testing.assert_close(convkit.corr2d(x, k, backend=backend), torch.tensor([[56.0, 72.0], [104.0, 120.0]]))
    k3 = torch.stack((k, k + 1, k + 2), 0)
    expected = torch.tensor([[[56.0, 72.0], [104.0, 120.0]], [[76.0, 100.0], [148.0, 172.0]],
                             [[96.0, 128.0], [192.0, 224.0]]])
    torch.testing.assert_close(convkit.corr2d(x, k3, backend=backend), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_d2l_edge_detection(backend):
    x = torch.ones((6, 8))
    x[:, 2:6] = 0
    k = torch.tensor([[1.0, -1.0]])
    row = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0])
    torch.testing.assert_close(convkit.corr2d(x, k, backend=backend), row.expand(6, 7))
    torch.testing.assert_close(convkit.corr2d(x.t(), k, backend=backend), torch.zeros(8, 5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_d2l_1x1_is_matmul(backend):
    x = torch.normal(0, 1, (3, 3, 3))
    k = torch.normal(0, 1, (2, 3, 1, 1))
    expected = (k.reshape(2, 3) @ x.reshape(3, 9)).reshape(2, 3, 3)
    torch.testing.assert_close(convkit.corr2d(x, k, backend=backend), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_d2l_pool2d(backend):
    torch.testing.assert_close(convkit.pool2d(X3, (2, 2), backend=backend), torch.tensor([[4.0, 5.0], [7.0, 8.0]]))
    torch.testing.assert_close(convkit.pool2d(X3, (2, 2), mode="avg", backend=backend),
                               torch.tensor([[2.0, 3.0], [5.0, 6.0]]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_d2l_pooling_layers(backend):
    x = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    pool = convkit.nn.MaxPool2d(3, backend=backend)
    torch.testing.assert_close(pool(x), torch.tensor([[[[10.0]]]]))
    pool = convkit.nn.MaxPool2d(3, padding=1, stride=2, backend=backend)
    torch.testing.assert_close(pool(x), torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    pool = convkit.nn.MaxPool2d((2, 4), padding=(1, 2), stride=(2, 3), backend=backend)
    torch.testing.assert_close(pool(x), torch.tensor([[[[1.0, 3.0], [9.0, 11.0], [13.0, 15.0]]]]))
    x2 = torch.cat((x, x + 1), 1)
    pool = convkit.nn.MaxPool2d(3, padding=1, stride=2, backend=backend)
    torch.testing.assert_close(pool(x2), torch.tensor([[[[5.0, 7.0], [13.0, 15.0]], [[6.0, 8.0], [14.0, 16.0]]]]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kwargs,shape", [
    (dict(kernel_size=3, padding=1), (8, 8)),
    (dict(kernel_size=(5, 3), padding=(2, 1)), (8, 8)),
    (dict(kernel_size=3, padding=1, stride=2), (4, 4)),
    (dict(kernel_size=(3, 5), padding=(0, 1), stride=(3, 4)), (2, 2)),
])
def test_d2l_comp_conv2d_shapes(backend, kwargs, shape):
    conv = convkit.nn.Conv2d(1, 1, backend=backend, **kwargs)
    assert conv(torch.rand(size=(1, 1, 8, 8))).shape[2:] == shape


# --------------------------------------------------------------------------- rank rules and dtypes
@pytest.mark.parametrize("backend", BACKENDS)
def test_rank_rules(backend):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    w4 = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64)
    y = convkit.corr2d(x, w4, backend=backend)
    assert y.shape == (4, 5, 4)
    torch.testing.assert_close(y, F.conv2d(x[None], w4)[0])
    y = convkit.corr2d(x, w4[0], torch.tensor(0.5, dtype=torch.float64), backend=backend)
    torch.testing.assert_close(y, F.conv2d(x[None], w4[:1])[0, 0] + 0.5)
    # a Python-number bias, and a 1-element bias shared by every output channel
    torch.testing.assert_close(convkit.corr2d(x, w4, 2.0, backend=backend), F.conv2d(x[None], w4)[0] + 2.0)
    torch.testing.assert_close(convkit.corr2d(x, w4, torch.ones(1, dtype=torch.float64), backend=backend),
                               F.conv2d(x[None], w4)[0] + 1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pool_ranks_and_indices(backend):
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    y, i = convkit.pool2d(x, 2, return_indices=True, backend=backend)
    ry, ri = F.max_pool2d(x[None], 2, 1, return_indices=True)
    torch.testing.assert_close(y, ry[0])
    assert torch.equal(i, ri[0])
    assert convkit.pool2d(x[0], 3, mode="avg", backend=backend).shape == (4, 3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_reduced_precision_keeps_dtype(backend, dtype):
    case = CONV_CASES[1]
    x, w, b = case.inputs(torch.float64)
    ref = case.oracle(x, w, b)
    y = convkit.corr2d(x.to(dtype), w.to(dtype), b.to(dtype), backend=backend, **case.kwargs())
    assert y.dtype == dtype
    # at most 2x torch's own error at this dtype
    torch_err = (case.oracle(x.to(dtype), w.to(dtype), b.to(dtype)).double() - ref).abs().max().item()
    assert (y.double() - ref).abs().max().item() <= 2 * torch_err + 1e-6
    for mode in ("max", "avg"):
        p = convkit.pool2d(x.to(dtype), 2, 2, mode=mode, backend=backend)
        assert p.dtype == dtype
        torch.testing.assert_close(p, (F.max_pool2d if mode == "max" else F.avg_pool2d)(x.to(dtype), 2, 2))


def test_conv2d_is_corr2d():
    assert convkit.conv2d is convkit.corr2d


# --------------------------------------------------------------------------- conformance grid
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.id)
def test_corr2d_matches_torch(backend, case):
    x, w, b = case.inputs()
    y = convkit.corr2d(x, w, b, backend=backend, **case.kwargs())
    torch.testing.assert_close(y, case.oracle(x, w, b), rtol=1e-10, atol=1e-10)


def test_same_padding_stride1_matches_torch():
    x, w = torch.randn(2, 3, 7, 6, dtype=torch.float64), torch.randn(4, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(convkit.corr2d(x, w, padding="same", dilation=(1, 2)),
                               F.conv2d(x, w, padding="same", dilation=(1, 2)))


@pytest.mark.parametrize("backend", BACKENDS + ["torch"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.id)
def test_pool2d_matches_torch(backend, case):
    x = case.inputs()
    y = convkit.pool2d(x, case.kernel, case.stride, case.padding, backend=backend, **case.kwargs())
    torch.testing.assert_close(y, case.oracle(x), rtol=1e-12, atol=1e-12)
    if case.mode == "max":
        y, i = convkit.pool2d(x, case.kernel, case.stride, case.padding, return_indices=True, backend=backend,
                              **case.kwargs())
        assert torch.equal(i, case.oracle(x, return_indices=True)[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_signatures(backend):
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    torch.testing.assert_close(convkit.max_pool2d(x, 3, backend=backend), F.max_pool2d(x, 3))
    torch.testing.assert_close(convkit.max_pool2d(x, 3, 2, 1, 1, True, backend=backend),
                               F.max_pool2d(x, 3, 2, 1, 1, True))
    torch.testing.assert_close(convkit.avg_pool2d(x, 3, backend=backend), F.avg_pool2d(x, 3))
    torch.testing.assert_close(convkit.avg_pool2d(x, 3, 2, 1, True, False, None, backend=backend),
                               F.avg_pool2d(x, 3, 2, 1, True, False, None))


def test_available_backends_and_auto():
    names = convkit.available_backends("cpu")
    assert {"naive", "unfold", "torch"} <= set(names)
    from convkit.functional import resolve_backend
    expected = "compiled" if "compiled" in names else "unfold"
    assert resolve_backend("auto", torch.device("cpu"), torch.float32) == expected


_FRESH_COMPILE_SCRIPT = r"""
import torch, torch.nn.functional as F, convkit
x = torch.randn(2, 3, 8, 9, dtype=torch.float64)
w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
for backend in ("auto", "unfold", "torch") + (("compiled",) if "compiled" in convkit.available_backends() else ()):
    f = torch.compile(lambda x, w: convkit.max_pool2d(convkit.corr2d(x, w, padding=1, backend=backend), 2,
                                                      backend=backend), fullgraph=True)
    torch.testing.assert_close(f(x, w), F.max_pool2d(F.conv2d(x, w, padding=1), 2))
    torch._dynamo.reset()
print("ok")
"""


def test_first_call_inside_torch_compile_fullgraph():
    # a fresh process whose first convkit call is traced: resolving the backend must not need an import
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", _FRESH_COMPILE_SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
