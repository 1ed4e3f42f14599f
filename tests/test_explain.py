"""convkit.explain: shapes, costs and the compiled backend's plan agree with what actually runs."""
import pytest
import torch
import torch.nn.functional as F

import convkit
from conftest import COMPILED_SKIP


@pytest.mark.parametrize("x, w, kw, groups", [
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), 1),
    ((1, 3, 224, 224), (64, 3, 7, 7), dict(stride=2, padding=3), 1),
    ((2, 8, 13, 11), (8, 1, 3, 3), dict(padding=(0, 2, 1, 0), dilation=2), 8),
    ((1, 1, 6, 8), (1, 1, 1, 2), {}, 1),
])
def test_shapes_and_costs_match_a_real_call(x, w, kw, groups):
    e = convkit.explain(x, w, groups=groups, **kw)
    pads = e.padding
    y = F.conv2d(F.pad(torch.zeros(x), (pads[2], pads[3], pads[0], pads[1])), torch.zeros(w), None,
                 e.stride, 0, e.dilation, groups)
    assert e.output_shape == tuple(y.shape)
    n, o, ho, wo = y.shape
    assert e.flops == 2 * n * o * ho * wo * w[1] * w[2] * w[3]
    assert e.min_bytes == 4 * (torch.zeros(x).numel() + torch.zeros(w).numel() + o + y.numel())
    assert e.intensity == pytest.approx(e.flops / e.min_bytes)
    assert set(e.backends) == {"naive", "unfold", "compiled", "torch"}
    text = str(e)
    assert str(e.output_shape) in text and "FLOP/byte" in text


def test_roofline_needs_both_peaks():
    e = convkit.explain((8, 256, 28, 28), (256, 1, 3, 3), padding=1, groups=256, peak_gflops=400, bandwidth_gbs=30)
    assert e.bound == "memory" and e.roofline_ms == pytest.approx(e.min_bytes / 30e9 * 1e3)
    assert any("memory-bound" in n for n in e.notes)
    dense = convkit.explain((8, 64, 56, 56), (64, 64, 3, 3), padding=1, peak_gflops=400, bandwidth_gbs=30)
    assert dense.bound == "compute" and dense.roofline_ms == pytest.approx(dense.flops / 400e9 * 1e3)
    assert convkit.explain((1, 1, 4, 4), (1, 1, 3, 3)).roofline_ms is None


@COMPILED_SKIP
@pytest.mark.parametrize("x, w, kw, algo, expect", [
    ((8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), "auto", "Winograd"),
    ((1, 512, 7, 7), (512, 512, 3, 3), dict(padding=1), "auto", "implicit GEMM"),
    ((256, 1, 28, 28), (6, 1, 5, 5), dict(padding=2), "auto", "direct rows"),
    ((1, 512, 7, 7), (512, 512, 3, 3), dict(padding=1), "winograd", "Winograd"),
    ((2, 16, 9, 9), (16, 16, 3, 3), dict(padding=1), "im2col", "im2col"),
    ((2, 16, 9, 9), (16, 16, 3, 3), dict(stride=2), "implicit_gemm", "implicit GEMM"),
])
def test_compiled_plan_is_the_kernels_plan(x, w, kw, algo, expect):
    e = convkit.explain(x, w, algo=algo, **kw)
    assert expect in e.backends["compiled"]["forward"]
    ws = e.backends["compiled"]["extra_bytes"]
    if algo == "im2col":  # the column matrix, exactly
        assert ws["forward"] == x[0] * x[1] * 9 * e.output_shape[2] * e.output_shape[3] * 4
    else:  # no im2col-sized buffer: the workspace does not grow with the batch (Winograd: chunked)
        big = convkit.explain((64 * x[0],) + tuple(x[1:]), w, algo=algo, **kw)
        ws_big = big.backends["compiled"]["extra_bytes"]["forward"]
        if big.backends["compiled"]["forward"] != e.backends["compiled"]["forward"]:
            assert algo == "auto"  # a bigger batch may change what auto picks (here: Winograd); not a buffer
        elif "Winograd" in expect:
            assert ws_big <= 36 * w[0] * w[1] * 4 + (16 << 20) + 36 * (x[1] + w[0]) * 4 * 4 * 16 * 4
        else:
            assert ws_big == ws["forward"]


@COMPILED_SKIP
def test_forced_algorithm_that_does_not_apply_is_reported():
    e = convkit.explain((1, 1, 28, 28), (6, 1, 5, 5), algo="winograd")
    assert "not applicable" in e.backends["compiled"]["forward"] and "3x3" in e.backends["compiled"]["forward"]


@pytest.mark.parametrize("args, kw, match", [
    (((1, 3, 8), (4, 3, 3, 3)), {}, "input_shape must be 4"),
    (((1, 3, 8, 8), (4, 3, 3, 3)), dict(groups=0), "groups must be a positive int"),
    (((1, 3, 8, 8), (4, 2, 3, 3)), {}, "channels"),
    (((1, 3, 8, 8), (4, 3, 3, 3)), dict(algo="fft"), "algo must be one of"),
    (((1, 3, 8, 8), (4, 3, 3, 3)), dict(stride=0), "stride must be positive"),
    (((1, 3, 2, 2), (4, 3, 3, 3)), {}, "larger than the padded input"),
])
def test_bad_arguments_name_the_argument(args, kw, match):
    with pytest.raises(ValueError, match=match):
        convkit.explain(*args, **kw)
