"""convkit.convert: a torch.nn CNN and its converted copy agree in outputs, gradients and state_dict."""
import pytest
import torch
from torch import nn

import convkit
from conftest import BACKENDS


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, groups=2), nn.Sigmoid(), nn.AvgPool2d(2, count_include_pad=False),
        nn.Sequential(nn.Conv2d(6, 8, 1, bias=False)), nn.Flatten(), nn.Linear(8 * 3 * 3, 10),
    ).double()


@pytest.mark.parametrize("backend", BACKENDS)
def test_convert_same_outputs_and_gradients(backend):
    torch.manual_seed(0)
    model = small_cnn()
    conv = convkit.convert(model, backend=backend)
    kinds = [type(m) for m in conv.modules()]
    assert nn.Conv2d not in kinds and nn.MaxPool2d not in kinds and nn.AvgPool2d not in kinds
    assert kinds.count(convkit.nn.Conv2d) == 3 and convkit.nn.MaxPool2d in kinds and convkit.nn.AvgPool2d in kinds
    assert all(type(m) in (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d) or not hasattr(m, "backend")
               for m in model.modules())  # the original is untouched
    x = torch.randn(3, 1, 12, 12, dtype=torch.float64)
    torch.testing.assert_close(conv(x), model(x), rtol=1e-10, atol=1e-10)
    conv(x).square().sum().backward()
    model(x).square().sum().backward()
    for (n1, p1), (n2, p2) in zip(conv.named_parameters(), model.named_parameters()):
        assert n1 == n2
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-10, atol=1e-10)


def test_convert_state_dict_round_trip_and_inplace():
    model = small_cnn()
    conv = convkit.convert(model)
    assert conv.state_dict().keys() == model.state_dict().keys()
    fresh = small_cnn()
    fresh.load_state_dict(conv.state_dict())
    conv.load_state_dict(fresh.state_dict())
    same = convkit.convert(model, inplace=True)
    assert same is model and isinstance(model[0], convkit.nn.Conv2d)
    single = convkit.convert(nn.Conv2d(2, 2, 3), backend="naive")
    assert isinstance(single, convkit.nn.Conv2d) and single.backend == "naive"
