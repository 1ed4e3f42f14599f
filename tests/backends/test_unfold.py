"""The unfold backend's memory budget: chunking over the batch and over output-row bands is exact."""
import pytest
import torch

import convkit
from convkit.backends import unfold


@pytest.fixture
def tiny_budget():
    old = convkit.get_unfold_memory_budget()
    yield
    convkit.set_unfold_memory_budget(old)


@pytest.mark.parametrize("budget", [1, 3000, 20000])  # 1 byte: one output row of one image at a time
def test_chunked_corr2d_and_grads_are_exact(tiny_budget, budget):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 11, 9, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    kw = dict(stride=(2, 1), padding=(1, 2, 0, 1), dilation=(1, 2), groups=2)
    convkit.set_unfold_memory_budget(budget)
    geom = unfold._Geometry(x.shape, w.shape, (2, 1), (1, 2, 0, 1), (1, 2), 2, 8)
    assert len(list(geom.chunks())) > 1
    y = convkit.corr2d(x, w, backend="unfold", **kw)
    gx, gw = torch.autograd.grad(y.square().sum(), (x, w))
    ref = convkit.corr2d(x, w, backend="torch", **kw)
    rgx, rgw = torch.autograd.grad(ref.square().sum(), (x, w))
    for a, b in ((y, ref), (gx, rgx), (gw, rgw)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_chunks_respect_the_budget(tiny_budget):
    convkit.set_unfold_memory_budget(2**20)
    geom = unfold._Geometry((32, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1, 4)
    for n0, n1, r0, r1 in geom.chunks():
        assert (n1 - n0) * (r1 - r0) * geom.row_bytes <= 2**20
    covered = sum((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in geom.chunks())
    assert covered == 32 * geom.ho


def test_chunked_pooling(tiny_budget):
    convkit.set_unfold_memory_budget(64)
    x = torch.randn(2, 5, 9, 8, dtype=torch.float64)
    for mode in ("max", "avg"):
        torch.testing.assert_close(convkit.pool2d(x, 3, 2, 1, mode=mode, backend="unfold"),
                                   convkit.pool2d(x, 3, 2, 1, mode=mode, backend="torch"))
