"""The CUDA kernels (issue 7) against torch on the GPU, in one run (about 8 minutes on an H100):

    python benchmarks/bench_cuda.py --json benchmarks/results/cuda_h100.json
    python benchmarks/bench_cuda.py --quick                      # a smoke run: one shape per section
    python benchmarks/bench_cuda.py --sections dense,pool --rounds 5
    python benchmarks/bench_cuda.py --table benchmarks/results/cuda_h100.json   # a saved run as markdown

Sections (issue 7's targets in brackets):
  dense     R3, R6, R8, R9, R11 at N = 32 and 128, fp32: forward, backward alone, forward+backward
            [fwd ratio <= 1.5 against cuDNN with TF32 off and >= 30 % of the measured fp32 peak; bwd ratio <= 2.0]
  latency   R1-R11 at N = 1, forward and forward+backward [fwd ratio <= 1.5]
  depthwise X1 at N = 32 and 128, forward and forward+backward [ratio <= 1.0, >= 70 % of copy bandwidth]
  pool      P1-P5 at N = 128 (NCHW and channels_last), forward and forward+backward [the same]
  algos     few-channel and mixed shapes (L1, L2, D1, T1, X1, X2, X3, X4, G1) at N = 32 with algo "direct" and
            "implicit_gemm" forced next to "auto": the data for the auto thresholds in csrc/cuda/corr2d.cu
Columns: torch (torch.nn.functional; torch.backends.cudnn.benchmark = True, TF32 off), torch-tf32 (the same with
TF32 on; fp32 convolutions only), convkit (convkit.corr2d / convkit.pool2d, backend "compiled"), convkit-op
(latency: torch.ops.convkit.corr2d called directly, without the Python argument layer). Ratio = convkit / torch
(below 1: convkit faster). TFLOP/s counts 2*MACs of the forward (backward 2x, forward+backward 3x); GB/s counts
pooling's input read + output written (plus indices and gradients for the backward, convkit/bench.py Shape.bytes)
and depthwise's input + output (+ gradients). Percentages are of the peaks measured at the start of the same run:
the fp32 rate of an 8192^3 torch.mm with TF32 off, and the bandwidth of a 256 MiB device-to-device copy_ (bytes
read + written). Timing: torch.utils.benchmark blocked_autorange with a synchronising timer, the variants of a
row interleaved over --rounds rounds (median reported), after one warm-up call each (cuDNN's algorithm search).
kernel_us (latency section, and everywhere with --kernel-times): the GPU time of the kernels of one call from
torch.profiler, free of CPU launch overhead.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

import convkit
from convkit.backends import compiled
from convkit._bench_measure import TF32, configure_device, make_call, measure_peaks, time_interleaved, warm_up
from convkit.bench import SHAPES_BY_ID

DEV = "cuda"
DENSE = ["R3", "R6", "R8", "R9", "R11"]
LATENCY = ["R1", "R2", "R3", "R4", "R6", "R8", "R9", "R10", "R11"]
POOLS = ["P1", "P2", "P3", "P4", "P5"]
ALGO_SHAPES = ["L1", "L2", "D1", "T1", "X1", "X2", "X3", "X4", "G1"]
SECTIONS = ["dense", "latency", "depthwise", "pool", "algos"]


def require_cuda() -> None:
    """Exit with status 2 and the reason when there is nothing to measure."""
    why = None
    if not torch.cuda.is_available():
        why = f"needs a CUDA device: torch.cuda.is_available() is False (torch {torch.__version__})"
    elif not (info := compiled.build_info()).get("built") or not info.get("cuda"):
        why = (f"needs convkit._C built with CUDA, got {info} (rebuild with a CUDA toolchain and a CUDA-enabled "
               f"torch: setup.py prints the flavour it builds)")
    if why:
        print(f"bench_cuda.py {why}", file=sys.stderr)
        sys.exit(2)


# --------------------------------------------------------------------------- calls
def conv_variant(shape, variant):
    """f(x, w, b) for one column."""
    s, p, d, g = shape.stride, shape.padding, shape.dilation, shape.groups
    if variant in ("torch", TF32):
        return shape.call("torch")
    if variant == "convkit-op":
        pads = [p[0], p[0], p[1], p[1]]
        op = torch.ops.convkit.corr2d.default
        return lambda x, w, b: op(x, w, b, list(s), pads, list(d), g, "auto")
    algo = variant.split(":", 1)[1] if ":" in variant else "auto"
    return lambda x, w, b: convkit.corr2d(x, w, b, s, p, d, g, backend="compiled", algo=algo)


def pool_variant(shape, variant):
    if variant == "torch":
        return shape.call("torch")
    return lambda x: convkit.pool2d(x, shape.kernel, shape.stride, shape.padding, mode=shape.op, backend="compiled")


def with_tf32(call):
    def f():
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        try:
            return call()
        finally:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    return f


def calls_for(shape, direction, variants, memory_format=torch.contiguous_format):
    """{variant: no-argument call} on one set of inputs shared by every variant."""
    grad = direction != "fwd"
    args = shape.inputs(torch.float32, DEV, requires_grad=grad, memory_format=memory_format)
    gy = None
    if grad:
        gy = torch.randn(shape.out_shape(), generator=torch.Generator().manual_seed(1)).to(DEV).contiguous(
            memory_format=memory_format)
    calls = {}
    for v in variants:
        fn = conv_variant(shape, v) if shape.op == "corr2d" else pool_variant(shape, v)
        call = make_call(fn, args, direction, gy)
        calls[v] = with_tf32(call) if v == TF32 else call
    return calls


def kernel_us(call, iters: int = 20) -> float:
    """GPU time of the kernels one call launches (torch.profiler, CUDA activity), in microseconds."""
    from torch.profiler import ProfilerActivity, profile
    call()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            call()
        torch.cuda.synchronize()
    total = 0.0
    for e in prof.key_averages():
        total += getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0.0)
    return total / iters


# --------------------------------------------------------------------------- one row
def work_of(shape, direction):
    """(amount, unit): FLOPs for dense convolutions, bytes for pooling and depthwise (memory-bound)."""
    if shape.op != "corr2d":
        return shape.bytes(4, direction), "GB/s"
    if shape.groups > 1 and shape.groups == shape.c:
        ho, wo = shape.out_hw()
        x, y = shape.n * shape.c * shape.h * shape.w, shape.n * shape.k * ho * wo
        per = {"fwd": x + y, "bwd": 2 * (x + y), "fwdbwd": 3 * (x + y)}[direction]
        return 4.0 * per, "GB/s"
    flops = shape.flops("fwd") * {"fwd": 1, "bwd": 2, "fwdbwd": 3}[direction]
    return flops, "TFLOP/s"


def measure_row(section, shape, direction, variants, a, peaks, layout="nchw", profile_kernels=False):
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    base = {"section": section, "id": shape.id, "n": shape.n, "shape": shape.describe(), "layout": layout,
            "direction": direction}
    skipped, first = {}, {}
    try:
        calls = calls_for(shape, direction, variants, fmt)
        for v in list(calls):  # one variant that fails (or runs out of memory) must not end the run
            try:
                first[v] = warm_up(calls[v], DEV)
            except Exception as e:
                skipped[v] = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                del calls[v]
                torch.cuda.empty_cache()
        if "torch" not in calls:
            raise RuntimeError(f"torch failed: {skipped.get('torch')}")
        times = time_interleaved(calls, a.rounds, a.min_run_time, DEV, first)
    except Exception as e:
        torch.cuda.empty_cache()
        row = {**base, "error": f"{type(e).__name__}: {str(e)[:200]}", "skipped": skipped}
        print_row(row)
        return row
    work, unit = work_of(shape, direction)
    ref = peaks["gemm_gflops"] if unit == "TFLOP/s" else peaks["copy_gbs"]
    med = {v: statistics.median(t) for v, t in times.items()}
    t_torch = med["torch"]
    cells = {}
    for v, t in med.items():
        rate = work / t / (1e12 if unit == "TFLOP/s" else 1e9)
        cells[v] = {"time_s": t, "times_s": times[v], "rate": rate,
                    "pct_peak": 100 * work / t / 1e9 / ref, "ratio_to_torch": t / t_torch}
        if profile_kernels:
            cells[v]["kernel_us"] = kernel_us(calls[v])
    row = {**base, "unit": unit, "work": work, "cells": cells, "skipped": skipped}
    print_row(row)
    del calls
    torch.cuda.empty_cache()
    return row


def fmt_time(t):
    return f"{t * 1e3:8.3f} ms" if t >= 1e-3 else f"{t * 1e6:8.1f} us"


def print_row(row):
    if "error" in row:
        print(f"  {row['shape']:<44} {row['direction']:<6} {row['error']}", flush=True)
        return
    c = row["cells"]
    main = "convkit" if "convkit" in c else next((v for v in c if v != "torch"), "torch")
    parts = [f"  {row['shape'] + (' CL' if row['layout'] == 'channels_last' else ''):<44} {row['direction']:<6}"]
    for v, cell in c.items():
        k = f" [{cell['kernel_us']:.1f} us GPU]" if "kernel_us" in cell else ""
        parts.append(f"{v} {fmt_time(cell['time_s'])}{k}")
    m = c[main]
    parts.append(f"ratio {m['ratio_to_torch']:.2f}  {m['rate']:.2f} {row['unit']} ({m['pct_peak']:.0f} % of peak)")
    parts += [f"{v} skipped ({why})" for v, why in row.get("skipped", {}).items()]
    print("  ".join(parts), flush=True)


# --------------------------------------------------------------------------- sections
def run(a):
    require_cuda()
    settings = configure_device(DEV)
    peaks = measure_peaks(DEV, rounds=5)
    gpu = torch.cuda.get_device_name()
    print(f"# {gpu}; torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}); "
          f"fp32 mm (TF32 off) {peaks['gemm_gflops'] / 1e3:.1f} TFLOP/s, copy {peaks['copy_gbs']:.0f} GB/s "
          f"(measured now); median of {a.rounds} interleaved rounds; ratio = convkit / torch", flush=True)
    quick = a.quick
    sections = a.sections.split(",")
    rows = []
    t0 = time.time()
    if "dense" in sections:
        print("## dense fp32 convolutions", flush=True)
        for sid in (DENSE[:1] if quick else DENSE):
            for n in ((32,) if quick else (32, 128)):
                for direction in ("fwd", "bwd", "fwdbwd"):
                    variants = ["torch", TF32, "convkit"]
                    rows.append(measure_row("dense", SHAPES_BY_ID[sid].with_n(n), direction, variants, a, peaks,
                                            profile_kernels=a.kernel_times))
    if "latency" in sections:
        print("## N = 1 latency", flush=True)
        for sid in (LATENCY[:2] if quick else LATENCY):
            for direction in ("fwd", "fwdbwd"):
                variants = ["torch", TF32, "convkit"] + (["convkit-op"] if direction == "fwd" else [])
                rows.append(measure_row("latency", SHAPES_BY_ID[sid].with_n(1), direction, variants, a, peaks,
                                        profile_kernels=True))
    if "depthwise" in sections:
        print("## depthwise X1 (memory-bound: GB/s of input + output)", flush=True)
        for n in ((128,) if quick else (32, 128)):
            for direction in ("fwd", "fwdbwd"):
                rows.append(measure_row("depthwise", SHAPES_BY_ID["X1"].with_n(n), direction, ["torch", "convkit"], a,
                                        peaks, profile_kernels=a.kernel_times))
    if "pool" in sections:
        print("## pooling (GB/s of input + output, + indices and gradients for the backward)", flush=True)
        for sid in (POOLS[:1] if quick else POOLS):
            for layout in ("nchw", "channels_last"):
                for direction in ("fwd", "fwdbwd"):
                    rows.append(measure_row("pool", SHAPES_BY_ID[sid].with_n(128), direction, ["torch", "convkit"],
                                            a, peaks, layout, profile_kernels=a.kernel_times))
    if "algos" in sections:
        print("## every CUDA algorithm forced (few-channel and mixed shapes, N = 32)", flush=True)
        for sid in (ALGO_SHAPES[:1] if quick else ALGO_SHAPES):
            for direction in ("fwd", "fwdbwd"):
                variants = ["torch", "convkit", "convkit:direct", "convkit:implicit_gemm"]
                rows.append(measure_row("algos", SHAPES_BY_ID[sid].with_n(32), direction, variants, a, peaks,
                                        profile_kernels=a.kernel_times))
    result = {
        "gpu": gpu, "device_capability": list(torch.cuda.get_device_capability()),
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version(), "convkit": _git_commit(),
                     "python": platform.python_version()},
        "convkit_build": compiled.build_info(), "settings": {**settings, "rounds": a.rounds,
                                                                            "min_run_time": a.min_run_time},
        "peaks": peaks, "seconds": time.time() - t0, "rows": rows, "targets": targets(rows),
    }
    print_targets(result["targets"])
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"saved {a.json}")
    return result


def _git_commit() -> str:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:
        return "unknown"


# --------------------------------------------------------------------------- the targets
def targets(rows) -> list:
    """Every row checked against issue 7's target for its section and direction."""
    out = []
    for r in rows:
        if "error" in r or "convkit" not in r["cells"]:
            continue
        c = r["cells"]["convkit"]
        ratio, pct = c["ratio_to_torch"], c["pct_peak"]
        s, d = r["section"], r["direction"]
        if s == "dense" and d == "fwd":
            goal, ok = "ratio <= 1.5 and >= 30 % of fp32 peak", ratio <= 1.5 and pct >= 30
        elif s == "dense" and d == "bwd":
            goal, ok = "ratio <= 2.0", ratio <= 2.0
        elif s == "latency" and d == "fwd":
            goal, ok = "ratio <= 1.5", ratio <= 1.5
        elif s in ("depthwise", "pool"):
            goal, ok = "ratio <= 1.0 and >= 70 % of copy bandwidth", ratio <= 1.0 and pct >= 70
        else:
            continue
        out.append({"row": f"{r['shape']}{' CL' if r['layout'] == 'channels_last' else ''} {d}", "goal": goal,
                    "ratio": ratio, "pct_peak": pct, "met": ok})
    return out


def print_targets(ts):
    if not ts:
        return
    print(f"## issue 7 targets: {sum(t['met'] for t in ts)} of {len(ts)} met", flush=True)
    for t in ts:
        print(f"  {'met ' if t['met'] else 'MISS'} {t['row']:<52} ratio {t['ratio']:.2f}, {t['pct_peak']:.0f} % "
              f"of peak ({t['goal']})")


def table(path):
    """A saved run as markdown, one table per section."""
    with open(path) as f:
        r = json.load(f)
    p = r["peaks"]
    print(f"{r['gpu']}, torch {r['versions']['torch']} (CUDA {r['versions']['cuda']}, cuDNN {r['versions']['cudnn']}),"
          f" convkit {r['versions']['convkit']}; fp32 mm {p['gemm_gflops'] / 1e3:.1f} TFLOP/s, copy "
          f"{p['copy_gbs']:.0f} GB/s (measured in the run); TF32 off except the torch-tf32 column.\n")
    for section in SECTIONS:
        rows = [x for x in r["rows"] if x["section"] == section and "error" not in x]
        if not rows:
            continue
        variants = list(dict.fromkeys(v for x in rows for v in x["cells"]))
        print(f"### {section}\n")
        print("| shape | dir | " + " | ".join(variants) + " | ratio | rate (% of peak) |")
        print("|---|---|" + "---|" * len(variants) + "---|---|")
        for x in rows:
            c = x["cells"]
            m = c.get("convkit") or next(iter(c.values()))
            cells = " | ".join(fmt_time(c[v]["time_s"]).strip() if v in c else "" for v in variants)
            print(f"| {x['shape']}{' CL' if x['layout'] == 'channels_last' else ''} | {x['direction']} | {cells} | "
                  f"{m['ratio_to_torch']:.2f}x | {m['rate']:.2f} {x['unit']} ({m['pct_peak']:.0f} %) |")
        print()
    ts = r.get("targets", [])
    if ts:
        print(f"Targets met: {sum(t['met'] for t in ts)} of {len(ts)}.")


def main(argv=None):
    ap = argparse.ArgumentParser(description="issue 7: the CUDA kernels against torch on the GPU (see the module docstring)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {SECTIONS}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-run-time", type=float, default=0.1, help="seconds per blocked_autorange measurement")
    ap.add_argument("--quick", action="store_true", help="one shape per section")
    ap.add_argument("--kernel-times", action="store_true", help="profile GPU kernel time in every section")
    ap.add_argument("--json", help="save the run here")
    ap.add_argument("--table", metavar="RESULT.json", help="print a saved run as markdown and exit")
    a = ap.parse_args(argv)
    if a.table:
        return table(a.table)
    run(a)


if __name__ == "__main__":
    main()
