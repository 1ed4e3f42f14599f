"""The reference rates the benchmark tables quote percentages of, measured here, now:
  * FMA rate: torch.mm on 2048x2048 fp32 (MKL sgemm) in GFLOP/s — an attainable peak, not the datasheet one;
  * copy bandwidth: a 256 MiB fp32 tensor's copy_ in GB/s, counting bytes read + written.
Medians of --rounds torch.utils.benchmark measurements at the current thread count.

    python benchmarks/machine_peaks.py [--json benchmarks/results/machine_peaks.json]
"""
import argparse
import json
import statistics

import torch
from torch.utils import benchmark


def measure(rounds=5):
    a = torch.randn(2048, 2048)
    src, dst = torch.randn(64 * 2**20), torch.empty(64 * 2**20)
    mm, cp = [], []
    for _ in range(rounds):
        t = benchmark.Timer("a @ a", globals={"a": a}).blocked_autorange(min_run_time=0.3).median
        mm.append(2 * 2048**3 / t / 1e9)
        t = benchmark.Timer("d.copy_(s)", globals={"d": dst, "s": src}).blocked_autorange(min_run_time=0.3).median
        cp.append(2 * src.numel() * 4 / t / 1e9)
    return {"threads": torch.get_num_threads(), "sgemm_gflops": statistics.median(mm),
            "copy_gbs": statistics.median(cp), "sgemm_all": mm, "copy_all": cp}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--json", default=None)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    r = measure(a.rounds)
    print(f"{r['threads']} threads: sgemm {r['sgemm_gflops']:.0f} GFLOP/s, copy {r['copy_gbs']:.1f} GB/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
