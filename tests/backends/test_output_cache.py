"""The compiled CPU kernels' output cache (csrc/cpu/output_cache.h): large outputs reuse freed blocks."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import convkit
from conftest import COMPILED_SKIP

pytestmark = COMPILED_SKIP


def test_large_outputs_reuse_freed_blocks_and_stay_correct():
    x = torch.randn(4, 64, 64, 64)  # 4 MiB input, 1 MiB outputs: cached sizes
    convkit.empty_cache()
    before = convkit.cache_info()
    for _ in range(3):
        y = convkit.max_pool2d(x, 2)
        torch.testing.assert_close(y, F.max_pool2d(x, 2), rtol=0, atol=0)
        # a reused block holds the previous call's values: every output element must be written again
        y.fill_(float("nan"))
        del y
    after = convkit.cache_info()
    assert after["hits"] - before["hits"] >= 2
    assert after["cached_bytes"] >= 1 << 20
    # backward into a reused block: max backward zeroes the plane first
    xg = x.clone().requires_grad_()
    for _ in range(2):
        g, = torch.autograd.grad(convkit.max_pool2d(xg, 3, 2, 1).sum(), xg)
        xr = x.clone().requires_grad_()
        r, = torch.autograd.grad(F.max_pool2d(xr, 3, 2, 1).sum(), xr)
        torch.testing.assert_close(g, r, rtol=0, atol=0)
        g.fill_(float("nan"))
        del g
    convkit.empty_cache()
    assert convkit.cache_info()["cached_bytes"] == 0


def test_cached_outputs_are_ordinary_tensors():
    x = torch.randn(2, 16, 128, 128)
    w = torch.randn(16, 16, 3, 3)
    y = convkit.corr2d(x, w, padding=1)
    assert y.is_contiguous() and y.device.type == "cpu"
    y.resize_(4, 16, 128, 128)  # resizable like at::empty's storage
    y[2:] = 1
    assert y.shape == (4, 16, 128, 128) and bool((y[2:] == 1).all())
    yc = convkit.max_pool2d(x.to(memory_format=torch.channels_last), 2)
    assert yc.is_contiguous(memory_format=torch.channels_last)


def _run(env_value, code):
    env = dict(os.environ, CONVKIT_CPU_CACHE_MB=env_value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_limit_zero_disables_the_cache_and_a_bad_limit_is_a_clear_error():
    code = ("import torch, convkit\n"
            "x = torch.randn(4, 64, 64, 64)\n"
            "for _ in range(3): convkit.max_pool2d(x, 2)\n"
            "i = convkit.cache_info(); print(i['limit_bytes'], i['cached_bytes'], i['hits'])\n")
    r = _run("0", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", "0"]
    r = _run("8", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == str(8 << 20)
    r = _run("lots", code)  # the ops and cache_info raise a RuntimeError naming the variable, no crash
    assert r.returncode == 1 and "RuntimeError: CONVKIT_CPU_CACHE_MB must be a non-negative integer (MiB), " \
        "got 'lots'" in r.stderr and "terminate" not in r.stderr
