"""Every backend against torch on the shape list of ../shared/PERFORMANCE.md, forward and forward+backward.

    python benchmarks/bench_backends.py                       # N = 1 and 8, all conv + pool shapes
    python benchmarks/bench_backends.py --shapes R3,R9 --n 8 --direction fwdbwd --json out.json

For each shape the backends are timed in one process, interleaved: `--rounds` rounds, each timing every
backend once with torch.utils.benchmark (blocked_autorange, after a warm-up call; convkit/_bench_measure.py's
time_interleaved, as `python -m convkit bench`); the reported time is the median over rounds, so a slow
period of the machine hits every backend alike. fp32, NCHW contiguous.
forward+backward = one forward and the gradients of input, weight and bias (input only for pooling).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics

import torch

import convkit
from convkit._bench_measure import case_calls, time_interleaved
from convkit.bench import SHAPES, SHAPES_BY_ID

FWD_BWD_UNFOLD_LIMIT_GFLOP = 40.0  # skip unfold where one call would take seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=None, help="comma-separated ids (default: all)")
    p.add_argument("--n", default="1,8", help="batch sizes")
    p.add_argument("--backends", default="unfold,compiled,torch")
    p.add_argument("--direction", default="fwd,fwdbwd")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    ids = a.shapes.split(",") if a.shapes else [s.id for s in SHAPES]
    backends = a.backends.split(",")
    rows = []
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; median of {a.rounds} interleaved rounds; ratio = backend / torch")
    for sid in ids:
        for n in map(int, a.n.split(",")):
            shape = SHAPES_BY_ID[sid].with_n(n)
            for direction in a.direction.split(","):
                gflop = shape.flops(direction) / 1e9
                calls = case_calls(shape, direction, [b for b in backends
                                                      if not (b == "unfold" and gflop > FWD_BWD_UNFOLD_LIMIT_GFLOP)])
                times = time_interleaved(calls, a.rounds, a.min_run_time)
                med = {b: statistics.median(v) for b, v in times.items()}
                ref = med.get("torch")
                row = {"shape": sid, "n": n, "direction": direction, "desc": shape.describe(),
                       "median_s": med, "all_s": times,
                       "ratio_to_torch": {b: t / ref for b, t in med.items()} if ref else {}}
                rows.append(row)
                cells = "  ".join(f"{b} {t * 1e3:9.3f} ms ({t / ref:5.2f}x)" if ref else f"{b} {t * 1e3:9.3f} ms"
                                  for b, t in med.items())
                print(f"{sid:4s} N={n:<3d} {direction:6s} {cells}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": torch.get_num_threads(), "torch": torch.__version__,
                       "convkit": convkit.info()["compiled"], "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
