"""corr2d: torch (oneDNN) against convkit's compiled backend, per shape and batch size, with every algorithm.

    python benchmarks/bench_conv.py                                    # R1-R11, G1, X1-X4, D1, T0-L2; N = 1, 8
    python benchmarks/bench_conv.py --shapes R3,R9 --n 8 --algos auto,implicit_gemm,winograd --json r.json
    python benchmarks/bench_conv.py --table r.json                     # a saved run as a markdown table

For each shape, batch size and direction, torch and convkit (algo "auto" and each forced --algos that
applies to the shape) run on the same inputs, interleaved: --rounds rounds, each timing every variant once
with torch.utils.benchmark (blocked_autorange, convkit/_bench_measure.py's time_interleaved); the time
reported is the median over rounds. The FMA peak (register-only FMA chains, convkit._C.fma_peak), the sgemm
rate (torch.mm 2048^2) and copy bandwidth are measured at the start of the same run; GFLOP/s counts the
forward's 2*MACs (forward+backward: 3x). ratio = convkit / torch
(below 1: convkit faster). fp32, NCHW contiguous in and out.

On a shared machine the rate the cores give moves during a run (here the probe read 230-360 GFLOP/s within
one session), so a peak taken once at the start flatters or blames whatever runs later. The FMA probe is
therefore also timed as one more variant of every case, interleaved with the kernels in the same rounds
(PROBE_ITERS chains per call, about 5 ms at 455 GFLOP/s); the median over all its calls in the case (warm-up
and the repeats within each round included) is the row's fma_gflops_interleaved,
and the table's "% FMA peak" is against it (pct_of_fma_interleaved; pct_of_fma keeps the start-of-run one).

The allocator. torch (and convkit's outputs) allocate through glibc, which returns freed blocks above its
mmap threshold to the OS and trims the heap; the next call then faults every page in again (~1 us per
4 KiB page on this VM). Whether that happens depends on what the process freed before, so one library or
shape can read 1.5-3x slower in one process than in another (R9 N=1 torch grad_weight: 2.09 ms against 0.69;
R11 N=8: 11.1 against 4.9; ~45 % of the time in the kernel's page-fault path, perf). Run once as is (the
issue's default allocator) and once in the steady state a training loop reaches:
    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 python benchmarks/bench_conv.py ...
The JSON and the table record which ("allocator").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

import torch

import convkit
from convkit._bench_measure import ALLOCATOR_ENV, make_call, measure_peaks, time_interleaved
from convkit.bench import SHAPES, SHAPES_BY_ID

DEFAULT_SHAPES = [s.id for s in SHAPES if s.op == "corr2d"]
PROBE_ITERS = 3_000_000


def applies(algo, shape) -> bool:
    if algo == "direct":
        return shape.stride[1] == 1
    if algo == "winograd":
        return shape.kernel == (3, 3) and shape.stride == (1, 1) and shape.dilation == (1, 1)
    return True


def variant_call(shape, variant):
    s, p, d, g = shape.stride, shape.padding, shape.dilation, shape.groups
    if variant == "torch":
        return shape.call("torch")
    algo = variant.split(":", 1)[1]
    return lambda x, w, b: convkit.corr2d(x, w, b, s, p, d, g, backend="compiled", algo=algo)


def allocator() -> dict:
    """The allocator settings of this process (glibc's MALLOC_* variables and the like, as set)."""
    return {k: os.environ[k] for k in ALLOCATOR_ENV if k in os.environ}


def alloc_text(alloc) -> str:
    return ", ".join(f"{k}={v}" for k, v in alloc.items()) if alloc else "default (glibc, as the process starts)"


def run(a):
    if a.threads:
        torch.set_num_threads(a.threads)
    peaks = measure_peaks("cpu", rounds=3)
    alloc = allocator()
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, allocator {alloc_text(alloc)}; FMA peak {peaks.get('fma_gflops', float('nan')):.0f} GFLOP/s, "
          f"sgemm {peaks['gemm_gflops']:.0f} GFLOP/s, copy {peaks['copy_gbs']:.1f} GB/s "
          f"(measured now); median of {a.rounds} interleaved rounds; ratio = convkit / torch", flush=True)
    rows = []
    for sid in a.shapes.split(","):
        for n in map(int, a.n.split(",")):
            shape = SHAPES_BY_ID[sid].with_n(n)
            for direction in a.direction.split(","):
                grad = direction != "fwd"
                args = shape.inputs(requires_grad=grad)
                gy = torch.randn(shape.out_shape(), generator=torch.Generator().manual_seed(1)) if grad else None
                variants = ["torch"] + [f"compiled:{al}" for al in a.algos.split(",") if applies(al, shape)]
                calls = {v: make_call(variant_call(shape, v), args, direction, gy) for v in variants}
                probe_rates = []
                if "fma_gflops" in peaks:
                    from convkit.backends import compiled
                    calls["probe"] = lambda: probe_rates.append(compiled.fma_peak(PROBE_ITERS))
                times = time_interleaved(calls, a.rounds, a.min_run_time)
                times.pop("probe", None)
                med = {v: statistics.median(t) for v, t in times.items()}
                flop = shape.flops(direction)
                row = {"shape": sid, "n": n, "direction": direction, "desc": shape.describe(), "flop": flop,
                       "median_s": med, "all_s": times,
                       "ratio_to_torch": {v: t / med["torch"] for v, t in med.items()},
                       "gflops": {v: flop / t / 1e9 for v, t in med.items()},
                       "pct_of_sgemm": {v: 100 * flop / t / 1e9 / peaks["gemm_gflops"] for v, t in med.items()}}
                if "fma_gflops" in peaks:
                    row["pct_of_fma"] = {v: 100 * flop / t / 1e9 / peaks["fma_gflops"] for v, t in med.items()}
                if probe_rates:
                    fma_now = row["fma_gflops_interleaved"] = statistics.median(probe_rates)
                    row["pct_of_fma_interleaved"] = {v: 100 * flop / t / 1e9 / fma_now for v, t in med.items()}
                rows.append(row)
                cells = "  ".join(f"{v.replace('compiled:', '')} {t * 1e3:8.3f} ms ({t / med['torch']:4.2f}x, "
                                  f"{row['gflops'][v]:5.0f} GF/s)" for v, t in med.items())
                probe_text = f"  (FMA probe {row['fma_gflops_interleaved']:.0f})" if probe_rates else ""
                print(f"{sid:4s} N={n:<2d} {direction:6s} {cells}{probe_text}", flush=True)
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "allocator": alloc, "peaks": peaks,
              "convkit": convkit.info()["compiled"], "rounds": a.rounds, "rows": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


def table(path) -> str:
    with open(path) as f:
        r = json.load(f)
    variants = sorted({v for row in r["rows"] for v in row["median_s"]} - {"torch"})
    fma = "fma_gflops" in r["peaks"]  # runs before the FMA probe quote % of the sgemm rate only
    now = all("pct_of_fma_interleaved" in row for row in r["rows"])  # runs before the interleaved probe: at start
    pct, key = (("% FMA peak", "pct_of_fma_interleaved" if now else "pct_of_fma") if fma else
                ("% sgemm", "pct_of_sgemm"))
    head = "| shape | N | dir | torch ms | " + " | ".join(f"{v.replace('compiled:', '')} ms (ratio, {pct})"
                                                         for v in variants) + (" | FMA probe GF/s |" if now else " |")
    peak_text = (f"FMA peak {r['peaks']['fma_gflops']:.0f} GFLOP/s and sgemm {r['peaks']['gemm_gflops']:.0f} GFLOP/s"
                 if fma else f"sgemm {r['peaks']['gemm_gflops']:.0f} GFLOP/s")
    pct_text = ("; % FMA peak is against the probe interleaved with each row's rounds (last column)" if now else "")
    alloc = "" if "allocator" not in r else f", allocator {alloc_text(r['allocator'])}"
    lines = [f"{r['threads']} threads, torch {r['torch']}{alloc}, {peak_text} measured at the start of the run; median "
             f"of {r['rounds']} interleaved rounds; ratio = convkit / torch{pct_text}", "",
             head, "|" + "---|" * (4 + len(variants) + now)]
    for row in r["rows"]:
        cells = []
        for v in variants:
            t = row["median_s"].get(v)
            cells.append("-" if t is None else
                         f"{t * 1e3:.3f} ({row['ratio_to_torch'][v]:.2f}x, {row[key][v]:.0f} %)")
        if now:
            cells.append(f"{row['fma_gflops_interleaved']:.0f}")
        lines.append(f"| {row['shape']} | {row['n']} | {row['direction']} | {row['median_s']['torch'] * 1e3:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=",".join(DEFAULT_SHAPES))
    p.add_argument("--n", default="1,8")
    p.add_argument("--algos", default="auto", help="compiled algorithms: auto,direct,implicit_gemm,im2col,winograd")
    p.add_argument("--direction", default="fwd,fwdbwd")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--min-run-time", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--table", default=None, help="print a saved JSON run as markdown and exit")
    a = p.parse_args(argv)
    if a.table:
        print(table(a.table))
        return
    run(a)


if __name__ == "__main__":
    main()
