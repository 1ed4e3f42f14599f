"""python -m convkit bench: every backend against torch.nn.functional on ../shared/PERFORMANCE.md's shapes.

    python -m convkit bench                        # the default suite: every shape, forward and forward+backward
    python -m convkit bench --quick                # a few shapes, under a minute
    python -m convkit bench --op corr2d --shapes R3,R9 --direction fwd --threads 2 --json r.json
    python -m convkit bench --shapes "8,64,56,56,64,3,3,1,1;max:8,64,112,112,3,3,2,1"   # custom shapes
    python -m convkit bench --load r.json --compare old.json --plot plots/        # a saved run, no measuring

A table per op (corr2d, pool2d) and direction (fwd: inference under no_grad; fwdbwd: forward and the
gradients of every input), rows the shapes, columns the backends: median time per call, GFLOP/s (corr2d)
or GB/s (pool2d, bytes read + written), the % of the FMA rate (a gemm) or copy bandwidth measured at the
start of the same run, the ratio to torch's time (<1 is faster) and the peak extra memory of one call.
How: convkit/_bench_measure.py (timing, peaks, memory); tables, comparisons and plots: convkit/_bench_report.py.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time

import torch


@dataclasses.dataclass(frozen=True)
class Shape:
    id: str
    n: int
    c: int
    h: int
    w: int
    k: int = 0            # out channels (corr2d)
    kernel: tuple = (3, 3)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    op: str = "corr2d"    # or "max" / "avg" pooling

    @classmethod
    def from_dict(cls, d: dict) -> "Shape":
        """The inverse of dataclasses.asdict (JSON turns the tuples into lists)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @property
    def kind(self) -> str:
        return "corr2d" if self.op == "corr2d" else "pool2d"

    def with_n(self, n: int) -> "Shape":
        return dataclasses.replace(self, n=n)

    def describe(self) -> str:
        p = f" p{self.padding[0]}" if self.padding[0] == self.padding[1] else f" p{self.padding[0]},{self.padding[1]}"
        s = f" s{self.stride[0]}" if self.stride[0] == self.stride[1] else f" s{self.stride[0]},{self.stride[1]}"
        if self.op == "corr2d":
            g = f" g{self.groups}" if self.groups > 1 else ""
            d = f" d{self.dilation[0]}" if self.dilation != (1, 1) else ""
            return (f"{self.id} N{self.n} {self.c}->{self.k} {self.h}x{self.w} k{self.kernel[0]}x{self.kernel[1]}"
                    f"{s}{p}{d}{g}")
        return f"{self.id} N{self.n} C{self.c} {self.h}x{self.w} {self.op} {self.kernel[0]}x{self.kernel[1]}{s}{p}"

    def out_hw(self):
        from ._shapes import conv_out_size, pool_out_size
        if self.op == "corr2d":
            return tuple(conv_out_size(n, k, 2 * p, s, d) for n, k, p, s, d in
                         zip((self.h, self.w), self.kernel, self.padding, self.stride, self.dilation))
        return tuple(pool_out_size(n, k, p, s, 1, False) for n, k, p, s in
                     zip((self.h, self.w), self.kernel, self.padding, self.stride))

    def out_shape(self):
        return (self.n, self.k if self.op == "corr2d" else self.c, *self.out_hw())

    def flops(self, direction: str = "fwd") -> float:
        """Multiply-adds x 2 of the forward; forward+backward adds grad_input and grad_weight: 3x."""
        ho, wo = self.out_hw()
        fwd = 2.0 * self.n * self.k * ho * wo * (self.c // self.groups) * self.kernel[0] * self.kernel[1]
        return fwd * (3 if direction == "fwdbwd" else 1)

    def bytes(self, itemsize: int = 4, direction: str = "fwd") -> float:
        """The bytes pooling must move (the same count for every backend).

        fwd: input read + output written. fwdbwd adds, for max, the int64 indices written then read, and the
        backward: grad_output read + grad_input written. bwd: the backward alone.
        """
        ho, wo = self.out_hw()
        x, y = self.n * self.c * self.h * self.w, self.n * self.c * ho * wo
        idx = 8 * y if self.op == "max" else 0
        fwd, bwd = itemsize * (x + y), itemsize * (y + x) + idx
        return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + idx + bwd}[direction]

    def work(self, direction: str, itemsize: int = 4) -> float:
        """What the rate is counted in: FLOPs for corr2d, bytes for pooling."""
        return self.flops(direction) if self.op == "corr2d" else self.bytes(itemsize, direction)

    def inputs(self, dtype=torch.float32, device="cpu", requires_grad=False, memory_format=torch.contiguous_format):
        """Seeded inputs: (x,) for pooling, (x, w, b) for corr2d; created on the CPU so that every device sees
        the same numbers."""
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.n, self.c, self.h, self.w, generator=g).to(device, dtype).contiguous(
            memory_format=memory_format)
        t = (x,) if self.op != "corr2d" else (
            x, torch.randn(self.k, self.c // self.groups, *self.kernel, generator=g).to(device, dtype),
            torch.randn(self.k, generator=g).to(device, dtype))
        return tuple(a.requires_grad_() for a in t) if requires_grad else t

    def call(self, backend):
        """f(*inputs) on one backend; "torch" calls torch.nn.functional directly (not through convkit)."""
        import torch.nn.functional as F

        import convkit
        s, p, d = self.stride, self.padding, self.dilation
        if backend == "torch":
            if self.op == "corr2d":
                return lambda x, w, b: F.conv2d(x, w, b, s, p, d, self.groups)
            if self.op == "max":
                return lambda x: F.max_pool2d(x, self.kernel, s, p)
            return lambda x: F.avg_pool2d(x, self.kernel, s, p)
        if self.op == "corr2d":
            return lambda x, w, b: convkit.corr2d(x, w, b, s, p, d, self.groups, backend=backend)
        return lambda x: convkit.pool2d(x, self.kernel, s, p, mode=self.op, backend=backend)


def _conv(id, n, c, k, hw, kernel, stride=1, pad=0, dil=1, groups=1):
    h, w = hw if isinstance(hw, tuple) else (hw, hw)
    two = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    return Shape(id, n, c, h, w, k, two(kernel), two(stride), two(pad), two(dil), groups)


def _pool(id, n, c, hw, mode, kernel, stride, pad=0):
    return Shape(id, n, c, hw, hw, 0, (kernel, kernel), (stride, stride), (pad, pad), (1, 1), 1, mode)


# ../shared/PERFORMANCE.md's shape list (N is set per run; L1/L2 are quoted at N = 256 there).
SHAPES = [
    _conv("R1", 1, 3, 64, 224, 7, 2, 3),
    _conv("R2", 1, 64, 64, 56, 1),
    _conv("R3", 1, 64, 64, 56, 3, pad=1),
    _conv("R4", 1, 64, 256, 56, 1),
    _conv("R6", 1, 128, 128, 56, 3, 2, 1),
    _conv("R8", 1, 128, 128, 28, 3, pad=1),
    _conv("R9", 1, 256, 256, 14, 3, pad=1),
    _conv("R10", 1, 1024, 256, 14, 1),
    _conv("R11", 1, 512, 512, 7, 3, pad=1),
    _conv("G1", 1, 192, 32, 28, 5, pad=2),
    _conv("D1", 1, 1, 32, (161, 700), (5, 20), 2),
    _conv("X1", 1, 32, 32, 112, 3, pad=1, groups=32),
    _conv("X2", 1, 64, 64, 56, 3, pad=1, groups=4),
    _conv("X3", 1, 64, 64, 56, 3, pad=2, dil=2),
    _conv("X4", 1, 20, 24, 30, 3, (2, 1), (1, 0)),
    _conv("L1", 1, 1, 6, 28, 5, pad=2),
    _conv("L2", 1, 6, 16, 14, 5),
    _conv("T1", 1, 1, 1, 256, 3, pad=1),
    _conv("T0", 1, 1, 1, (6, 8), (1, 2)),
    _pool("P1", 1, 64, 112, "max", 3, 2, 1),
    _pool("P2", 1, 256, 56, "max", 2, 2),
    _pool("P3", 1, 256, 56, "avg", 2, 2),
    _pool("P4", 1, 2048, 7, "avg", 7, 7),
    _pool("P5", 1, 64, 112, "max", 3, 1, 1),
]

SHAPES_BY_ID = {s.id: s for s in SHAPES}

# The default suite: every shape at N = 8, except the d2l example (T0, one image) and LeNet's layers at the
# N = 256 PERFORMANCE.md quotes them at.
DEFAULT_N = {"T0": 1, "L1": 256, "L2": 256}
DEFAULT_SHAPES = [s.with_n(DEFAULT_N.get(s.id, 8)) for s in SHAPES]

# --quick: a few shapes spanning overhead-bound, few-channel, dense, depthwise and pooling.
QUICK_SHAPES = [
    SHAPES_BY_ID["T0"],
    dataclasses.replace(SHAPES_BY_ID["T1"], h=32, w=32),
    SHAPES_BY_ID["L1"].with_n(32),
    SHAPES_BY_ID["R3"],
    SHAPES_BY_ID["X1"],
    SHAPES_BY_ID["P1"],
    SHAPES_BY_ID["P3"],
]

# The scaling study (the im2col-vs-direct question of d2l's exercises): one corr2d forward, "same" padding,
# stride 1, varying one of input size H (= W), channels C (in = out) and kernel size k from a base point.
SCALING_BASE = {"H": 32, "C": 32, "k": 3}
SCALING_AXES = {"H": (8, 16, 32, 64, 128, 256), "C": (4, 8, 16, 32, 64, 128, 256), "k": (1, 3, 5, 7, 9, 11)}
QUICK_SCALING_AXES = {"H": (16, 32, 64), "C": (8, 32, 128), "k": (1, 3, 7)}


def scaling_shape(axis: str, value: int) -> Shape:
    p = {**SCALING_BASE, axis: value}
    return _conv(f"{axis}={value}", 1, p["C"], p["C"], p["H"], p["k"], pad=p["k"] // 2)


# naive loops in Python over output positions: ~30 us each forward, ~150 us with backward, plus the
# arithmetic, plus (backward) one input-sized gradient per window slice. Run only where a call is
# estimated, then measured, to take about a second at most.
NAIVE_MAX_S = 1.0


def naive_estimate_s(shape: Shape, direction: str) -> float:
    ho, wo = shape.out_hw()
    px = ho * wo
    if direction == "fwd":
        return px * 30e-6 + shape.flops("fwd") / 20e9
    padded = shape.n * shape.c * (shape.h + 2 * shape.padding[0]) * (shape.w + 2 * shape.padding[1]) * 4
    return px * (150e-6 + padded / 5e9) + shape.flops("fwdbwd") / 20e9


def parse_shapes(text: str) -> list[Shape]:
    """--shapes: ids ("R3,R9") and/or custom specs, separated by ";": "N,C,H,W,K,R,S,stride,pad" (corr2d;
    K out channels, R x S kernel) or "max:N,C,H,W,R,S,stride,pad" / "avg:..." (pooling)."""
    shapes, custom = [], 0
    for item in filter(None, (t.strip() for t in text.replace(" ", ";").split(";"))):
        if not item[0].isdigit() and ":" not in item:
            for sid in filter(None, item.split(",")):
                if sid not in SHAPES_BY_ID:
                    raise ValueError(f"unknown shape id {sid!r}; known: {', '.join(SHAPES_BY_ID)}")
                shapes.append(SHAPES_BY_ID[sid])
            continue
        mode, _, spec = item.rpartition(":")
        if mode not in ("", "max", "avg"):
            raise ValueError(f"bad pooling mode {mode!r} in {item!r}: use max: or avg:")
        try:
            v = [int(t) for t in spec.split(",")]
        except ValueError:
            raise ValueError(f"bad shape spec {item!r}: expected integers") from None
        custom += 1
        sid = f"custom{custom}"
        if not mode:
            if len(v) != 9:
                raise ValueError(f"bad corr2d spec {item!r}: expected N,C,H,W,K,R,S,stride,pad (9 integers)")
            n, c, h, w, k, r, s, st, pd = v
            shapes.append(_conv(sid, n, c, k, (h, w), (r, s), st, pd))
        else:
            if len(v) != 8:
                raise ValueError(f"bad pooling spec {item!r}: expected {mode}:N,C,H,W,R,S,stride,pad (8 integers)")
            n, c, h, w, r, s, st, pd = v
            shapes.append(Shape(sid, n, c, h, w, 0, (r, s), (st, st), (pd, pd), (1, 1), 1, mode))
    return shapes


# --------------------------------------------------------------------------- the CLI
def add_arguments(p):
    p.add_argument("--quick", action="store_true", help="a few shapes, a small scaling study: under a minute")
    p.add_argument("--op", choices=["corr2d", "pool2d"], default=None, help="only this op (default: both)")
    p.add_argument("--shapes", default=None,
                   help='ids ("R3,R9") and/or ";"-separated specs "N,C,H,W,K,R,S,stride,pad" or '
                        '"max:N,C,H,W,R,S,stride,pad" (default: the whole shape list)')
    p.add_argument("--batch", type=int, default=None, help="set N of every shape given by id")
    p.add_argument("--backends", default=None,
                   help="comma-separated (default: every backend available on the device; torch is always added)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every backend "
                   "(default: torch's, normally the core count)")
    p.add_argument("--direction", choices=["fwd", "fwdbwd"], default=None, help="only this direction (default: both)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per case (default 3; quick 2)")
    p.add_argument("--min-run-time", type=float, default=None,
                   help="seconds per measurement (blocked_autorange; default 0.1; quick 0.05)")
    p.add_argument("--naive-max-s", type=float, default=NAIVE_MAX_S,
                   help="time naive only where one call takes at most about this long (default %(default)s s)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling study (H, C, k sweeps)")
    p.add_argument("--json", metavar="PATH", default=None, help="write the results to this JSON file")
    p.add_argument("--load", metavar="RESULT.json", default=None,
                   help="measure nothing: print (and --compare / --plot) a saved result")
    p.add_argument("--compare", metavar="OLD.json", default=None, help="speedups against an earlier run")
    p.add_argument("--plot", metavar="DIR", default=None, help="write PNG plots (speedup vs torch, scaling) here")


class _NoBar:
    """What measure() uses of a tqdm bar, doing nothing (tqdm comes with requirements-dev.txt)."""

    def __init__(self, total):
        self.total = total

    def update(self, *args):
        pass

    set_description_str = refresh = close = update


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(total)
    return tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True, leave=False, disable=None)


def _select(args) -> tuple[list[Shape], list[str], dict]:
    if args.shapes:
        shapes = parse_shapes(args.shapes)
    else:
        shapes = QUICK_SHAPES if args.quick else DEFAULT_SHAPES
    if args.batch:
        shapes = [s.with_n(args.batch) if not s.id.startswith("custom") else s for s in shapes]
    if args.op:
        shapes = [s for s in shapes if s.kind == args.op]
    directions = [args.direction] if args.direction else ["fwd", "fwdbwd"]
    axes = {} if (args.no_scaling or args.shapes or args.op == "pool2d" or args.direction == "fwdbwd") else (
        QUICK_SCALING_AXES if args.quick else SCALING_AXES)
    return shapes, directions, axes


def measure(args) -> dict:
    """Run the suite the arguments select and return the result (the JSON document)."""
    import convkit
    from . import _bench_measure as M

    t_start = time.perf_counter()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = M.configure_device(device)
    rounds = args.rounds or (2 if args.quick else 3)
    min_run_time = args.min_run_time if args.min_run_time is not None else (0.05 if args.quick else 0.1)
    backends = args.backends.split(",") if args.backends else convkit.available_backends(device)
    backends = [b for b in backends if b != "torch"] + ["torch"]
    if gpu and dtype == torch.float32 and not args.backends:
        backends.append(M.TF32)  # torch with TF32 on, next to the baseline with TF32 off
    shapes, directions, axes = _select(args)
    if not shapes:
        raise SystemExit("convkit bench: no shapes selected (check --op and --shapes)")
    cases = [(s, d) for kind in ("corr2d", "pool2d") for d in directions for s in shapes if s.kind == kind]
    points = [(axis, v) for axis, values in axes.items() for v in values]

    bar = _progress(1 + len(cases) + len(points))
    bar.set_description_str("peaks")
    peaks = M.measure_peaks(device, dtype, rounds=rounds, min_run_time=max(min_run_time, 0.02))
    bar.update()
    rows = []
    for shape, direction in cases:
        bar.set_description_str(f"{shape.kind} {direction} {shape.id}")
        rows.append(M.time_case(shape, direction, backends, dtype, device, rounds, min_run_time, peaks,
                                naive_max_s=args.naive_max_s))
        bar.update()
    scaling = []
    for axis, value in points:
        bar.set_description_str(f"scaling {axis}={value}")
        row = M.time_case(scaling_shape(axis, value), "fwd", [b for b in backends if b != M.TF32], dtype, device,
                          rounds, min_run_time, peaks, naive_max_s=args.naive_max_s / 2)
        scaling.append({"axis": axis, "value": value, **row})
        bar.update()
    if not args.no_memory:
        todo = [(r, b) for r in rows + scaling for b in r["backends"]]
        bar.total += len(todo)
        bar.set_description_str("peak memory")
        bar.refresh()
        # calls over 20 ms are measured once after the warm-up, shorter ones twice (the smaller counts)
        mem = M.measure_memory([(Shape.from_dict(r["spec"]), r["direction"], b,
                                 1 if r["backends"][b]["first_s"] > 0.02 else 2) for r, b in todo],
                               device, dtype, torch.get_num_threads(), progress=bar.update)
        for (r, b), (nbytes, err) in zip(todo, mem):
            r["backends"][b]["mem_bytes"] = nbytes
            if err:
                r["backends"][b]["mem_error"] = err
    bar.close()
    return {
        "schema": "convkit-bench/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m convkit bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]),
        "suite": "custom" if args.shapes else ("quick" if args.quick else "default"),
        "machine": M.machine_info(device),
        "settings": {"device": device.type, "dtype": args.dtype, "threads": torch.get_num_threads(),
                     "rounds": rounds, "min_run_time_s": min_run_time, "backends": backends,
                     "directions": directions, "memory": not args.no_memory, "naive_max_s": args.naive_max_s, **gpu},
        "peaks": peaks,
        "rows": rows,
        "scaling": scaling,
        "wall_s": time.perf_counter() - t_start,
    }


def run(args) -> int:
    from . import _bench_report as R
    if args.load:
        with open(args.load) as f:
            result = json.load(f)
    else:
        if args.device == "cuda" and not torch.cuda.is_available():
            print(f"convkit bench: --device cuda, but CUDA is not available here (torch {torch.__version__}, "
                  f"torch.version.cuda={torch.version.cuda}; "
                  f"{'no GPU visible' if torch.version.cuda else 'a CPU-only torch build'}). "
                  f"Run with --device cpu, or on a machine with a GPU and a CUDA torch.", file=sys.stderr)
            return 2
        try:
            result = measure(args)
        except ValueError as e:
            print(f"convkit bench: {e}", file=sys.stderr)
            return 2
    print(R.format_result(result))
    if args.compare:
        with open(args.compare) as f:
            print("\n" + R.format_compare(result, json.load(f), args.compare))
    if args.json and not args.load:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot:
        for path in R.plot(result, args.plot):
            print(f"wrote {path}")
    if not args.load:
        print(f"\nwall time {result['wall_s']:.0f} s")
    return 0
