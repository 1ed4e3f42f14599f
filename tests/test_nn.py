"""convkit.nn: torch.nn-compatible parameters and state_dicts; the book's Corr2d layer learns the edge kernel."""
import pytest
import torch

import convkit
from conftest import BACKENDS


def test_conv2d_init_and_state_dict_match_torch():
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    torch.manual_seed(0)
    ours = convkit.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    assert isinstance(ours, torch.nn.Conv2d)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    for k, v in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v)  # same initialisation from the same seed
    ref2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    ref2.load_state_dict(ours.state_dict())
    ours.load_state_dict(ref2.state_dict())
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(ours(x), ref2(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv2d_module_padding_modes_and_same_stride(backend):
    x = torch.randn(1, 2, 9, 8, dtype=torch.float64)
    m = convkit.nn.Conv2d(2, 3, 3, padding="same", stride=2, padding_mode="reflect", dtype=torch.float64,
                          backend=backend)
    assert m(x).shape == (1, 3, 5, 4)
    m = convkit.nn.Conv2d(2, 3, (2, 3), padding=(0, 1, 2, 0), bias=False, dtype=torch.float64, backend=backend)
    assert m.bias is None
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 0, 0, 1)), m.weight)
    torch.testing.assert_close(m(x), ref)
    assert "backend=" in repr(m)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pool_modules(backend):
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    torch.testing.assert_close(convkit.nn.MaxPool2d(3, 2, 1, ceil_mode=True, backend=backend)(x),
                               torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)(x))
    torch.testing.assert_close(convkit.nn.AvgPool2d(3, 2, 1, count_include_pad=False, backend=backend)(x),
                               torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)(x))
    torch.testing.assert_close(convkit.nn.Pool2d(2, mode="avg", backend=backend)(x), torch.nn.AvgPool2d(2)(x))
    y, i = convkit.nn.MaxPool2d(2, return_indices=True, backend=backend)(x)
    assert torch.equal(i, torch.nn.MaxPool2d(2, return_indices=True)(x)[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_corr2d_layer_learns_the_edge_kernel(backend):
    # d2l 7.2.4: learn K from X and Y = corr2d(X, [[1, -1]]) with squared loss and gradient descent.
    torch.manual_seed(0)
    x = torch.ones((6, 8))
    x[:, 2:6] = 0
    y = convkit.corr2d(x, torch.tensor([[1.0, -1.0]]), backend="torch")
    layer = convkit.nn.Corr2d((1, 2), bias=False, backend=backend)
    for _ in range(20):
        loss = ((layer(x) - y) ** 2).sum()
        layer.zero_grad()
        loss.backward()
        layer.weight.data -= 3e-2 * layer.weight.grad
    assert (layer.weight.detach() - torch.tensor([[1.0, -1.0]])).abs().max() < 0.1
    assert loss.item() < 0.05


def test_corr2d_layer_has_the_books_parameters():
    layer = convkit.nn.Corr2d((1, 2))
    assert layer.weight.shape == (1, 2) and layer.bias.shape == (1,)
    x = torch.randn(4, 5)
    torch.testing.assert_close(layer(x), convkit.corr2d(x, layer.weight, backend="torch") + layer.bias)
