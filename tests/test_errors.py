"""Every user-facing error: the type, and a message naming the argument and what was expected."""
import pytest
import torch

import convkit

X = torch.randn(1, 4, 6, 6)
W = torch.randn(2, 4, 3, 3)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: convkit.corr2d([[1.0]], W), TypeError, "input must be a torch.Tensor"),
    (lambda: convkit.corr2d(X, "w"), TypeError, "weight must be a torch.Tensor"),
    (lambda: convkit.corr2d(X.to(torch.complex64), W), TypeError, "input must be a real.*complex"),
    (lambda: convkit.corr2d(torch.randn(6), W), ValueError, "ranks do not match"),
    (lambda: convkit.corr2d(X, torch.randn(3, 3)), ValueError, "ranks do not match"),
    (lambda: convkit.corr2d(X, torch.randn(2, 3, 3, 3)), ValueError, "input has 4 channels but weight expects 3"),
    (lambda: convkit.corr2d(X, torch.randn(3, 2, 3, 3), groups=2), ValueError, r"out_channels \(3\).*groups \(2\)"),
    (lambda: convkit.corr2d(torch.randn(1, 3, 6, 6), torch.randn(2, 1, 3, 3), groups=2), ValueError,
     "input has 3 channels but weight expects 1 \\* groups=2"),
    (lambda: convkit.corr2d(X, W, groups=0), ValueError, "groups must be a positive int"),
    (lambda: convkit.corr2d(torch.randn(3, 6, 6), torch.randn(3, 3, 3), groups=3), ValueError, "needs a 4-d weight"),
    (lambda: convkit.corr2d(X, torch.randn(2, 4, 7, 3)), ValueError, "larger than the padded input"),
    (lambda: convkit.corr2d(X, W, dilation=3), ValueError, "larger than the padded input"),
    (lambda: convkit.corr2d(X, W, stride=0), ValueError, "stride must be positive"),
    (lambda: convkit.corr2d(X, W, stride=(1, -2)), ValueError, "stride must be positive"),
    (lambda: convkit.corr2d(X, W, stride=1.5), TypeError, "stride must be an int or a pair"),
    (lambda: convkit.corr2d(X, W, dilation=0), ValueError, "dilation must be positive"),
    (lambda: convkit.corr2d(X, W, padding=-1), ValueError, "padding must be non-negative"),
    (lambda: convkit.corr2d(X, W, padding=(0, 1, -1, 0)), ValueError, "padding must be non-negative"),
    (lambda: convkit.corr2d(X, W, padding="full"), ValueError, "padding must be .*'valid' or 'same'"),
    (lambda: convkit.corr2d(X, W, padding=(1, 2, 3)), TypeError, "padding must be an int, a pair, a 4-tuple"),
    (lambda: convkit.corr2d(X, W, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (lambda: convkit.corr2d(X, W, padding=6, padding_mode="reflect"), ValueError, "reflect.*padding < input size"),
    (lambda: convkit.corr2d(X, W, padding=7, padding_mode="circular"), ValueError, "circular.*<= input size"),
    (lambda: convkit.corr2d(X, W, backend="fast"), ValueError, "backend must be one of"),
    (lambda: convkit.corr2d(X, W.double()), ValueError, "same dtype.*float32.*float64"),
    (lambda: convkit.corr2d(X, W, torch.randn(3)), ValueError, r"bias must be .*shape \(2,\)"),
    (lambda: convkit.corr2d(X, W, torch.randn(2).double()), ValueError, "bias must have the same dtype"),
    (lambda: convkit.corr2d(X, W, "b"), TypeError, "bias must be a torch.Tensor"),
    (lambda: convkit.corr2d(X, W, torch.randn(2, device="meta")), ValueError, "bias must be on the same device"),
    (lambda: convkit.corr2d(X, W.to("meta")), ValueError, "same device"),
])
def test_corr2d_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("call,exc,match", [
    (lambda: convkit.pool2d(X.numpy(), 2), TypeError, "input must be a torch.Tensor"),
    (lambda: convkit.pool2d(X.to(torch.complex64), 2), TypeError, "complex"),
    (lambda: convkit.pool2d(torch.randn(6), 2), ValueError, r"input must be \(H, W\)"),
    (lambda: convkit.pool2d(torch.randn(1, 1, 1, 6, 6), 2), ValueError, r"input must be \(H, W\)"),
    (lambda: convkit.pool2d(X, 2, mode="min"), ValueError, "mode must be 'max' or 'avg'"),
    (lambda: convkit.pool2d(X, 0), ValueError, "kernel_size must be positive"),
    (lambda: convkit.pool2d(X, 2, stride=0), ValueError, "stride must be positive"),
    (lambda: convkit.pool2d(X, 2, padding=-1), ValueError, "padding must be non-negative"),
    (lambda: convkit.pool2d(X, 2, padding=2), ValueError, "padding must be at most half of the kernel size"),
    (lambda: convkit.pool2d(X, 3, padding=(1, 2)), ValueError, "padding must be at most half"),
    (lambda: convkit.pool2d(X, 2, dilation=0), ValueError, "dilation must be positive"),
    (lambda: convkit.pool2d(X, 2, mode="avg", dilation=2), ValueError, "dilation is only supported for mode='max'"),
    (lambda: convkit.pool2d(X, 2, mode="avg", return_indices=True), ValueError, "return_indices is only"),
    (lambda: convkit.pool2d(X, 2, divisor_override=2), ValueError, "divisor_override is only supported"),
    (lambda: convkit.pool2d(X, 2, mode="avg", divisor_override=0), ValueError, "divisor_override must be a non-zero"),
    (lambda: convkit.pool2d(X, 7), ValueError, "larger than the padded input"),
    (lambda: convkit.pool2d(X, 2, backend="fast"), ValueError, "backend must be one of"),
    (lambda: convkit.max_pool2d(X, (2, 2, 2)), TypeError, "kernel_size must be an int or a pair"),
])
def test_pool2d_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("call,exc,match", [
    (lambda: convkit.nn.Conv2d(4, 2, 3, backend="fast"), ValueError, "backend must be one of"),
    (lambda: convkit.nn.Corr2d((0, 2)), ValueError, "kernel_size must be positive"),
    (lambda: convkit.nn.MaxPool2d(2, backend="x"), ValueError, "backend must be one of"),
    (lambda: convkit.convert("model"), TypeError, "model must be a torch.nn.Module"),
    (lambda: convkit.set_unfold_memory_budget(0), ValueError, "nbytes must be positive"),
])
def test_module_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_compiled_unavailable_error_quotes_import_error_and_build_command():
    from convkit.backends import get_backend
    compiled = get_backend("compiled")
    if compiled.available():
        pytest.skip("convkit._C is built here; the missing-extension message cannot occur")
    with pytest.raises(RuntimeError, match="importing convkit._C failed .*pip install --no-build-isolation"):
        convkit.corr2d(X, W, backend="compiled")
