"""convkit's compiled pooling against torch on P1-P5 of ../shared/PERFORMANCE.md, with bandwidth figures.

    python benchmarks/bench_pool.py                                  # N = 8 and 32, NCHW, both directions
    python benchmarks/bench_pool.py --n 8 --shapes P1,P3 --layouts nchw,channels_last --json out.json

Per shape, batch size, layout and direction it prints torch's time, convkit's time, the ratio (torch time /
convkit time: > 1 means convkit is faster), convkit's GB/s and its % of the copy bandwidth measured in the
same run (convkit/_bench_measure.py's measure_peaks: a 256 MiB copy_, bytes read + written). Both sides run
in one process, interleaved: `--rounds` rounds, each timing torch and convkit once with torch.utils.benchmark
(blocked_autorange after a warm-up call: _bench_measure.time_interleaved); reported times are medians over
the rounds. fp32. Bytes counted (convkit.bench.Shape.bytes: the minimum the operation must move; the same
count for both sides):
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

import torch

import convkit
from convkit._bench_measure import case_calls, measure_peaks, time_interleaved
from convkit.bench import SHAPES_BY_ID, Shape

POOL_IDS = ("P1", "P2", "P3", "P4", "P5")  # convkit.bench.SHAPES, from ../shared/PERFORMANCE.md
SMALL = {"d2l-3x3": (1, 1, 3, 2, 1, 0), "d2l-4x4": (1, 1, 4, 3, 2, 1)}  # (N, C, H=W, kernel, stride, padding)


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
    p.add_argument("--shapes", default=",".join(POOL_IDS))
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
    peaks = measure_peaks(rounds=3)
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
            n, c, h, k, st, pad = SMALL[sid]
            shape = Shape(sid, n, c, h, h, 0, (k, k), (st, st), (pad, pad), (1, 1), 1, "max")
        else:
            shape = SHAPES_BY_ID[sid].with_n(n)
        memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        c, h, mode, k, st, pad = shape.c, shape.h, shape.op, shape.kernel[0], shape.stride[0], shape.padding[0]
        for direction in a.direction.split(","):
            calls = case_calls(shape, direction, ["torch", "compiled"], memory_format=memory_format)
            times = time_interleaved({"torch": calls["torch"], "convkit": calls["compiled"]}, a.rounds,
                                     a.min_run_time)
            med = {b: statistics.median(v) for b, v in times.items()}
            nbytes = shape.bytes(4, direction)
            gbs = nbytes / med["convkit"] / 1e9
            row = {"shape": sid, "n": n, "c": c, "hw": h, "mode": mode, "kernel": k, "stride": st, "padding": pad,
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
