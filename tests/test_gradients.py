"""Gradients: gradcheck/gradgradcheck in float64, and gradients equal to torch's on the whole grid."""
import pytest
import torch

import convkit
from cases import CONV_CASES, POOL_CASES, ConvCase, PoolCase
from conftest import BACKENDS

CONV_BY_ID = {c.id: c for c in CONV_CASES}
POOL_BY_ID = {c.id: c for c in POOL_CASES}
# Small cases for the numerical checks (each costs one forward per input element).
GRADCHECK_CONV = [
    ConvCase("small_pad1", n=1, c=2, h=5, w=4, o=2, padding=1),
    ConvCase("small_stride2_asym", n=2, c=2, h=5, w=5, o=3, k=(2, 3), stride=2, padding=(0, 1, 1, 0)),
    ConvCase("small_groups_dil", n=1, c=4, h=6, w=5, o=2, groups=2, dilation=(2, 1), padding=1),
    ConvCase("small_reflect_same", n=1, c=2, h=5, w=4, o=2, padding="same", padding_mode="reflect"),
]
GRADCHECK_POOL = [
    PoolCase("max_3x3_s2_p1_ceil", n=1, c=2, h=6, w=5, kernel=3, padding=1, ceil_mode=True),
    PoolCase("max_dil", n=1, c=2, h=7, w=6, kernel=2, stride=1, dilation=2),
    PoolCase("avg_ceil_excl", mode="avg", n=1, c=2, h=6, w=5, kernel=3, padding=1, ceil_mode=True,
             count_include_pad=False),
    PoolCase("avg_divisor", mode="avg", n=1, c=2, h=5, w=5, kernel=2, stride=1, divisor_override=3),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", GRADCHECK_CONV, ids=lambda c: c.id)
def test_corr2d_gradcheck(backend, case):
    x, w, b = (t.requires_grad_() for t in case.inputs())
    f = lambda x, w, b: convkit.corr2d(x, w, b, backend=backend, **case.kwargs())  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", GRADCHECK_POOL, ids=lambda c: c.id)
def test_pool2d_gradcheck(backend, case):
    x = case.inputs().requires_grad_()
    f = lambda x: convkit.pool2d(x, case.kernel, case.stride, case.padding, backend=backend,  # noqa: E731
                                 **case.kwargs())
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def _grads(out, inputs, seed=3):
    gy = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, [t for t in inputs if t is not None], gy)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.id)
def test_corr2d_grads_match_torch(backend, case):
    x, w, b = case.inputs()
    for t in (x, w, b):
        if t is not None:
            t.requires_grad_()
    got = _grads(convkit.corr2d(x, w, b, backend=backend, **case.kwargs()), (x, w, b))
    want = _grads(case.oracle(x, w, b), (x, w, b))
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.id)
def test_pool2d_grads_match_torch(backend, case):
    x = case.inputs().requires_grad_()
    got = _grads(convkit.pool2d(x, case.kernel, case.stride, case.padding, backend=backend, **case.kwargs()), (x,))
    want = _grads(case.oracle(x), (x,))
    torch.testing.assert_close(got[0], want[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_tie_gradient_goes_to_one_element(backend):
    # Equal values in a window: torch sends the whole gradient to the first maximum, not split.
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(convkit.pool2d(x, 2, 2, backend=backend).sum(), x)
    (r,) = torch.autograd.grad(torch.nn.functional.max_pool2d(x, 2, 2).sum(), x)
    assert torch.equal(g, r)
