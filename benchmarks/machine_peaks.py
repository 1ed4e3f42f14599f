"""The reference rates the benchmark tables quote percentages of, measured here, now:
  * GEMM rate: torch.mm on 2048x2048 fp32 (MKL sgemm) in GFLOP/s — an attainable rate, not the datasheet one;
  * FMA peak (with convkit._C built): register-only fp32 FMA chains on every thread (csrc/cpu/peak.cpp);
  * copy bandwidth: a 256 MiB fp32 tensor's copy_ in GB/s, counting bytes read + written.
Medians of --rounds torch.utils.benchmark measurements at the current thread count. The probes live in
convkit/_bench_measure.py (measure_peaks), which `python -m convkit bench` runs at the start of every run.

    python benchmarks/machine_peaks.py [--device cuda] [--json benchmarks/results/machine_peaks.json]
"""
import argparse
import json

from convkit._bench_measure import measure_peaks


def measure(rounds=5, device="cpu"):
    return measure_peaks(device, rounds=rounds)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--json", default=None)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    r = measure(a.rounds, a.device)
    fma = f", FMA peak {r['fma_gflops']:.0f} GFLOP/s" if "fma_gflops" in r else ""
    print(f"{r['threads']} threads: gemm {r['gemm_gflops']:.0f} GFLOP/s{fma}, copy {r['copy_gbs']:.1f} GB/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
