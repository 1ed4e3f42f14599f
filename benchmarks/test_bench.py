"""pytest-benchmark over a representative subset: `python -m convkit bench --quick`'s shapes (overhead-bound,
few-channel, dense, depthwise, pooling), unfold / compiled / torch, forward and forward+backward.

    pytest benchmarks/ --benchmark-only                                 # run and print the table
    pytest benchmarks/ --benchmark-only --benchmark-autosave            # save in .benchmarks/
    pytest benchmarks/ --benchmark-only --benchmark-compare             # against the last saved run
    pytest benchmarks/ --benchmark-only --benchmark-group-by=group -k R3

Not part of `pytest tests` (testpaths = tests). Threads: torch's default; set OMP_NUM_THREADS to pin them.
The calls are the suite's own (convkit._bench_measure.case_calls), so the two agree on what is timed.
"""
import pytest
import torch

import convkit
from convkit._bench_measure import case_calls
from convkit.bench import QUICK_SHAPES

BACKENDS = [b for b in ("unfold", "compiled", "torch") if b in convkit.available_backends("cpu")]


@pytest.mark.parametrize("direction", ["fwd", "fwdbwd"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", QUICK_SHAPES, ids=lambda s: f"{s.id}-N{s.n}-{s.h}x{s.w}")
def test_bench(benchmark, shape, backend, direction):
    call = case_calls(shape, direction, [backend])[backend]
    benchmark.group = f"{shape.describe()} {direction}"
    benchmark.extra_info.update(threads=torch.get_num_threads(), torch=torch.__version__, shape=shape.describe(),
                                work=shape.work(direction), unit="FLOP" if shape.kind == "corr2d" else "byte")
    call()  # warm-up
    benchmark(call)
