"""Swap torch.nn layers in a model for convkit's."""
from __future__ import annotations

import copy

from torch import nn

from . import functional as Fk
from . import nn as cnn


def _convert_one(m: nn.Module, backend: str):
    if isinstance(m, nn.Conv2d) and not isinstance(m, cnn.Conv2d):
        return cnn.Conv2d.from_torch(m, backend)
    if isinstance(m, nn.MaxPool2d) and not isinstance(m, cnn.MaxPool2d):
        return cnn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode,
                             backend=backend)
    if isinstance(m, nn.AvgPool2d) and not isinstance(m, cnn.AvgPool2d):
        return cnn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                             m.divisor_override, backend=backend)
    if isinstance(m, (cnn.Conv2d, cnn.MaxPool2d, cnn.AvgPool2d)):
        m.backend = backend
    return None


def convert(model: nn.Module, backend: str = "auto", inplace: bool = False) -> nn.Module:
    """Return `model` with every torch.nn.Conv2d / MaxPool2d / AvgPool2d replaced by convkit's.

    Each new Conv2d holds the very Parameter objects of the layer it replaces, so outputs, gradients
    and state_dict keys are unchanged. With inplace=False (default) the model is deep-copied first and
    the original is left alone; with inplace=True the original model is modified and returned.
    """
    Fk._check_backend_name(backend)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    new = _convert_one(model, backend)
    if new is not None:
        return new
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            new = _convert_one(child, backend)
            if new is not None:
                setattr(parent, name, new)
    return model
