"""convkit's compiled pooling against torch on P1-P5 of ../shared/PERFORMANCE.md, with bandwidth figures.

    python benchmarks/bench_pool.py                                  # N = 8 and 32, NCHW, both directions
    python benchmarks/bench_pool.py --n 8 --shapes P1,P3 --layouts nchw,channels_last --json out.json

Per shape, batch size, layout and direction it prints torch's time, convkit's time, the ratio (torch time /
convkit time: > 1 means convkit is faster), convkit's GB/s and its % of the copy bandwidth measured in the
same run (benchmarks/machine_peaks.py: a 256 MiB copy_, bytes read + written). Both sides run in one
process, interleaved: `--rounds` rounds, each timing torch and convkit once with torch.utils.benchmark
(blocked_autorange, warm-up included); reported times are medians over the rounds. fp32.

Bytes counted (the minimum the operation must move; the same count for both sides):
  fwd     inference (no_grad): input read + output written (max does not write indices here)
  bwd     backward alone: grad_output read (+ int64 indices read for max) + grad_input written
  fwdbwd  forward with indices + backward: fwd bytes (+ indices written) + bwd bytes
Also times the d2l examples (3x3 and 4x4 inputs), where the figure that matters is the per-call time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.utils import benchmark

import convkit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine_peaks  # noqa: E402

# id: (C, H=W, mode, kernel, stride, padding) from ../shared/PERFORMANCE.md
POOL_SHAPES = {
    "P1": (64, 112, "max", 3, 2, 1),
    "P2": (256, 56, "max", 2, 2, 0),
    "P3": (256, 56, "avg", 2, 2, 0),
    "P4": (2048, 7, "avg", 7, 7, 0),
    "P5": (64, 112, "max", 3, 1, 1),
}
SMALL = {"d2l-3x3": (1, 1, 3, 2, 1, 0), "d2l-4x4": (1, 1, 4, 3, 2, 1)}  # (N, C, H=W, kernel, stride, padding)


def out_size(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def fns(mode, k, s, p):
    if mode == "max":
        return (lambda x: F.max_pool2d(x, k, s, p), lambda x: convkit.max_pool2d(x, k, s, p, backend="compiled"))
    return (lambda x: F.avg_pool2d(x, k, s, p), lambda x: convkit.avg_pool2d(x, k, s, p, backend="compiled"))


def timed(fn, min_run_time):
    return benchmark.Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def case_calls(direction, f, x, gy):
    if direction == "fwd":
        def run():
            with torch.no_grad():
                return f(x)
        return run
    xr = x.detach().requires_grad_()
    if direction == "fwdbwd":
        return lambda: torch.autograd.grad(f(xr), xr, gy)
    y = f(xr)  # bwd: backward alone, through a graph kept alive
    return lambda: torch.autograd.grad(y, xr, gy, retain_graph=True)


def case_bytes(direction, mode, x, out_numel):
    e = x.element_size()
    fwd = x.numel() * e + out_numel * e
    bwd = out_numel * e + (out_numel * 8 if mode == "max" else 0) + x.numel() * e
    return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + (out_numel * 8 if mode == "max" else 0) + bwd}[direction]


def markdown(path) -> str:
    """A saved run as a markdown table (the README and the closing notes quote these, never typed)."""
    with open(path) as f:
        d = json.load(f)
    m = d["machine"]
    lines = [f"{m['threads']} threads, torch {m['torch']}, MALLOC_MMAP_THRESHOLD_="
             f"{m.get('malloc_mmap_threshold') or 'default'}, copy bandwidth {d['peaks']['copy_gbs']:.1f} GB/s "
             f"measured in the same run; speedup = torch time / convkit time",
             "", "| shape | N | layout | dir | torch | convkit | speedup | convkit GB/s | % of copy bw |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        t, c = r["median_s"]["torch"], r["median_s"]["convkit"]
        fmt = (lambda v: f"{v * 1e3:.2f} ms") if t > 1e-4 else (lambda v: f"{v * 1e6:.2f} us")
        lines.append(f"| {r['shape']} | {r['n']} | {r['layout']} | {r['direction']} | {fmt(t)} | {fmt(c)} | "
                     f"{r['speedup_vs_torch']:.2f}x | {r['convkit_gbs']:.1f} | {r['pct_copy_bw']:.0f} % |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=",".join(POOL_SHAPES))
    p.add_argument("--n", default="8,32")
    p.add_argument("--layouts", default="nchw", help="nchw,channels_last")
    p.add_argument("--direction", default="fwd,fwdbwd,bwd")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-run-time", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-small", action="store_true", help="skip the d2l-sized inputs")
    p.add_argument("--json", default=None)
    p.add_argument("--table", metavar="JSON", default=None, help="print a saved run as a markdown table and exit")
    a = p.parse_args(argv)
    if a.table:
        print(markdown(a.table))
        return
    torch.set_num_threads(a.threads)
    peaks = machine_peaks.measure(rounds=3)
    bw = peaks["copy_gbs"]
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'default')}; "
          f"copy bandwidth measured now: {bw:.1f} GB/s; median of {a.rounds} interleaved rounds")
    print(f"{'shape':<6}{'N':>4} {'layout':<14}{'dir':<7}{'torch':>10}{'convkit':>10}{'speedup':>9}"
          f"{'GB/s':>8}{'% bw':>7}")
    rows = []
    cases = [(sid, n, lay) for sid in a.shapes.split(",") for n in map(int, a.n.split(","))
             for lay in a.layouts.split(",")]
    if not a.no_small:
        cases += [(sid, None, "nchw") for sid in SMALL]
    for sid, n, layout in cases:
        if sid in SMALL:
            n, c, h, k, s, pad = SMALL[sid]
            mode = "max"
        else:
            c, h, mode, k, s, pad = POOL_SHAPES[sid]
        x = torch.randn(n, c, h, h)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        ho = out_size(h, k, s, pad)
        gy = torch.randn(n, c, ho, ho)
        if layout == "channels_last":
            gy = gy.contiguous(memory_format=torch.channels_last)
        f_torch, f_ck = fns(mode, k, s, pad)
        for direction in a.direction.split(","):
            calls = {"torch": case_calls(direction, f_torch, x, gy), "convkit": case_calls(direction, f_ck, x, gy)}
            times = {b: [] for b in calls}
            for _ in range(a.rounds):
                for b, fn in calls.items():
                    times[b].append(timed(fn, a.min_run_time))
            med = {b: statistics.median(v) for b, v in times.items()}
            nbytes = case_bytes(direction, mode, x, gy.numel())
            gbs = nbytes / med["convkit"] / 1e9
            row = {"shape": sid, "n": n, "c": c, "hw": h, "mode": mode, "kernel": k, "stride": s, "padding": pad,
                   "layout": layout, "direction": direction, "bytes": nbytes, "median_s": med, "all_s": times,
                   "speedup_vs_torch": med["torch"] / med["convkit"], "convkit_gbs": gbs,
                   "torch_gbs": nbytes / med["torch"] / 1e9, "pct_copy_bw": 100 * gbs / bw}
            rows.append(row)
            fmt = (lambda t: f"{t * 1e3:8.3f}ms") if med["torch"] > 1e-4 else (lambda t: f"{t * 1e6:8.2f}us")
            print(f"{sid:<6}{n:>4} {layout:<14}{direction:<7}{fmt(med['torch']):>10}{fmt(med['convkit']):>10}"
                  f"{row['speedup_vs_torch']:8.2f}x{gbs:8.1f}{row['pct_copy_bw']:6.0f}%", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": {"processor": platform.processor(), "threads": torch.get_num_threads(),
                                   "torch": torch.__version__, "convkit": convkit.info(),
                                   "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_")},
                       "peaks": peaks, "rows": rows}, f, indent=1, default=str)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
