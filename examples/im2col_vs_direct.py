"""im2col against direct loops for one convolution layer: the column matrix's size, then the time of each backend.

    python examples/im2col_vs_direct.py                                  # ResNet's 64->64 3x3 layer on 56x56
    python examples/im2col_vs_direct.py --c 3 --o 64 --h 224 --w 224 --k 7 --stride 2 --padding 3   # the stem
    python examples/im2col_vs_direct.py --c 32 --o 32 --groups 32 --plot im2col.png                 # depthwise

im2col (the `unfold` backend) copies every kh x kw input window into a column of a (C/g*kh*kw, Ho*Wo) matrix
per image and group, and turns the convolution into one matrix multiply: simple and fast, but the matrix is
about kh*kw/stride^2 times the input. `naive` is the book's loop over output positions; `compiled` computes
the same sums from the input in place (implicit GEMM over small per-thread tiles); `torch` is
torch.nn.functional.conv2d (oneDNN), the baseline.
"""
from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from torch.utils import benchmark

import convkit

# naive loops over output positions in Python (tens of microseconds each, three times that with backward):
# beyond this many positions (backward counting three times) a single call takes seconds and it is skipped.
NAIVE_MAX_POSITIONS = 10_000


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1, help="batch")
    parser.add_argument("--c", type=int, default=64, help="input channels")
    parser.add_argument("--o", type=int, default=64, help="output channels")
    parser.add_argument("--h", type=int, default=56)
    parser.add_argument("--w", type=int, default=56)
    parser.add_argument("--k", type=int, default=3, help="kernel size (square)")
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--padding", type=int, default=1)
    parser.add_argument("--dilation", type=int, default=1)
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    parser.add_argument("--naive-max-positions", type=int, default=NAIVE_MAX_POSITIONS,
                        help="time naive only when N*Ho*Wo (x3 with --backward) is at most this")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds of timing per backend")
    parser.add_argument("--plot", metavar="PATH", help="save a bar chart of memory and times to this PNG")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.c % args.groups or args.o % args.groups:
        parser.error(f"--c ({args.c}) and --o ({args.o}) must be divisible by --groups ({args.groups})")

    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.c, args.h, args.w, generator=g, dtype=dtype)
    weight = torch.randn(args.o, args.c // args.groups, args.k, args.k, generator=g, dtype=dtype)
    conf = dict(stride=args.stride, padding=args.padding, dilation=args.dilation, groups=args.groups)
    ref = F.conv2d(x, weight, None, **conf)
    ho, wo = ref.shape[-2:]
    item = x.element_size()

    print(f"layer: input {tuple(x.shape)}, weight {tuple(weight.shape)}, stride {args.stride}, padding {args.padding}, "
          f"dilation {args.dilation}, groups {args.groups} -> output {tuple(ref.shape)}, {args.dtype}, "
          f"{torch.get_num_threads()} thread(s)")
    if hasattr(convkit, "explain"):
        print("\nconvkit.explain:")
        print(convkit.explain(tuple(x.shape), tuple(weight.shape), stride=args.stride, padding=args.padding,
                              dilation=args.dilation, groups=args.groups))

    # ---- the column matrix, built once for real with F.unfold where it is affordable
    rows = args.c * args.k * args.k          # = groups * (C/g * kh * kw)
    col_bytes = args.n * rows * ho * wo * item
    print("\nim2col column matrix:")
    print(f"  shape (N, C*kh*kw, Ho*Wo) = ({args.n}, {rows}, {ho * wo}) "
          f"[{args.groups} group(s) of {rows // args.groups} rows]")
    if col_bytes <= 2**30:
        cols = F.unfold(x, args.k, dilation=args.dilation, padding=args.padding, stride=args.stride)
        assert tuple(cols.shape) == (args.n, rows, ho * wo) and cols.numel() * item == col_bytes
        del cols
    in_bytes, out_bytes = x.numel() * item, ref.numel() * item
    print(f"  {mib(col_bytes)} vs input {mib(in_bytes)} ({col_bytes / in_bytes:.1f}x) and output {mib(out_bytes)}")
    budget = convkit.get_unfold_memory_budget()
    chunks = math.ceil(col_bytes / budget)
    print(f"  the unfold backend's budget is {mib(budget)}: "
          + ("the whole matrix fits in one chunk" if chunks == 1 else
             f"it builds the matrix in at least {chunks} chunks (images, or bands of output rows)"))
    print("  compiled: no column matrix (reads the input in place, per-thread tiles only)")

    # ---- correctness and time of every backend
    flops = 2.0 * args.n * args.o * ho * wo * (args.c // args.groups) * args.k * args.k
    print(f"\n{'forward + backward' if args.backward else 'forward'}, {flops / 1e6:.1f} MFLOP forward:")
    backends = [b for b in ("naive", "unfold", "compiled", "torch") if b in convkit.available_backends(x.device)]
    missing = sorted({"naive", "unfold", "compiled", "torch"} - set(backends))
    if missing:
        print(f"  not available here: {', '.join(missing)}")
    times, results = {}, []
    for backend in backends:
        positions = args.n * ho * wo * (3 if args.backward else 1)
        if backend == "naive" and positions > args.naive_max_positions:
            times3 = " x 3 (backward)" if args.backward else ""
            print(f"  naive     skipped: {args.n * ho * wo} output positions{times3} > --naive-max-positions "
                  f"{args.naive_max_positions} (a Python loop over positions)")
            continue
        if args.backward:
            xg, wg = x.clone().requires_grad_(), weight.clone().requires_grad_()
            gy = torch.randn_like(ref)

            def fn(backend=backend, xg=xg, wg=wg, gy=gy):
                y = convkit.corr2d(xg, wg, backend=backend, **conf)
                return torch.autograd.grad(y, (xg, wg), gy)
        else:
            def fn(backend=backend):
                return convkit.corr2d(x, weight, backend=backend, **conf)
        out = convkit.corr2d(x, weight, backend=backend, **conf)
        err = (out - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
        m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, label=f"corr2d {tuple(x.shape)} * {tuple(weight.shape)}",
                            description=backend, num_threads=torch.get_num_threads()
                            ).blocked_autorange(min_run_time=args.min_run_time)
        results.append(m)
        times[backend] = m.median
        work = flops * (3 if args.backward else 1)
        print(f"  {backend:9s} {1e3 * m.median:10.3f} ms  {work / m.median / 1e9:7.2f} GFLOP/s  "
              f"max relative error vs F.conv2d {err:.1e}")
    if "torch" in times:
        ratios = (f"{b} {t / times['torch']:.2f}" for b, t in times.items() if b != "torch")
        print("  ratio to torch: " + "  ".join(ratios))

    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax_mem, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
        ax_mem.bar(["input", "im2col columns", "output"], [in_bytes / 2**20, col_bytes / 2**20, out_bytes / 2**20],
                   color=["tab:gray", "tab:red", "tab:gray"])
        ax_mem.set(ylabel="MiB", title="memory")
        ax_t.bar(list(times), [1e3 * t for t in times.values()], color="tab:blue")
        ax_t.set(ylabel="ms (median)", yscale="log",
                 title=("forward + backward" if args.backward else "forward") + " time")
        fig.suptitle(f"input {tuple(x.shape)}, weight {tuple(weight.shape)}, stride {args.stride}, "
                     f"padding {args.padding}, groups {args.groups}")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        plt.close(fig)
        print(f"plot saved to {args.plot}")


if __name__ == "__main__":
    main()
