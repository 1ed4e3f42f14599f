"""python -m convkit bench: the backends side by side against torch.nn.functional, in one process.

Shapes are ids from ../shared/PERFORMANCE.md's list. Each (shape, backend) is timed with
torch.utils.benchmark.Timer.blocked_autorange (warm-up included; the median of the blocks is reported);
the backends of one shape are timed one after the other in the same process, so ratios to torch compare
like with like. naive runs only where it finishes in about a second.
"""
from __future__ import annotations

import dataclasses
import json
import math

import torch
from torch.utils import benchmark


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

    def with_n(self, n: int) -> "Shape":
        return dataclasses.replace(self, n=n)

    def describe(self) -> str:
        if self.op == "corr2d":
            g = f" g{self.groups}" if self.groups > 1 else ""
            return (f"{self.id} N{self.n} {self.c}->{self.k} {self.h}x{self.w} k{self.kernel[0]}x{self.kernel[1]}"
                    f" s{self.stride[0]}{g}")
        return f"{self.id} N{self.n} C{self.c} {self.h}x{self.w} {self.op} {self.kernel[0]}x{self.kernel[1]} s{self.stride[0]}"

    def out_hw(self):
        from ._shapes import conv_out_size, pool_out_size
        if self.op == "corr2d":
            return tuple(conv_out_size(n, k, 2 * p, s, d) for n, k, p, s, d in
                         zip((self.h, self.w), self.kernel, self.padding, self.stride, self.dilation))
        return tuple(pool_out_size(n, k, p, s, 1, False) for n, k, p, s in
                     zip((self.h, self.w), self.kernel, self.padding, self.stride))

    def flops(self) -> float:
        ho, wo = self.out_hw()
        return 2.0 * self.n * self.k * ho * wo * (self.c // self.groups) * self.kernel[0] * self.kernel[1]

    def bytes(self, itemsize=4) -> float:
        ho, wo = self.out_hw()
        return itemsize * self.n * self.c * (self.h * self.w + ho * wo)

    def inputs(self, dtype=torch.float32, device="cpu"):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.n, self.c, self.h, self.w, generator=g).to(device, dtype)
        if self.op != "corr2d":
            return (x,)
        w = torch.randn(self.k, self.c // self.groups, *self.kernel, generator=g).to(device, dtype)
        return x, w, torch.randn(self.k, generator=g).to(device, dtype)

    def call(self, backend):
        import convkit
        if self.op == "corr2d":
            return lambda x, w, b: convkit.corr2d(x, w, b, self.stride, self.padding, self.dilation, self.groups,
                                                  backend=backend)
        return lambda x: convkit.pool2d(x, self.kernel, self.stride, self.padding, mode=self.op, backend=backend)


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

# The quick default: a few shapes spanning overhead-bound, few-channel, dense, depthwise and pooling.
DEFAULT_SHAPES = [
    SHAPES_BY_ID["T0"],
    dataclasses.replace(SHAPES_BY_ID["T1"], h=32, w=32),
    SHAPES_BY_ID["L1"].with_n(32),
    SHAPES_BY_ID["R3"],
    SHAPES_BY_ID["X1"],
    SHAPES_BY_ID["P1"],
    SHAPES_BY_ID["P3"],
]

NAIVE_MAX_OUTPUT_PIXELS = 1024  # ~10-20 us per output pixel: about a second at most


def add_arguments(p):
    p.add_argument("--backends", default=None, help="comma-separated (default: all available + torch)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: unchanged)")
    p.add_argument("--min-run-time", type=float, default=0.2, help="seconds per measurement")
    p.add_argument("--json", default=None, help="write the results to this JSON file")


def _time(fn, args, min_run_time):
    t = benchmark.Timer("fn(*args)", globals={"fn": fn, "args": args})
    return t.blocked_autorange(min_run_time=min_run_time).median


def run(args) -> int:
    import convkit
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends.split(",") if args.backends else convkit.available_backends("cpu")
    if "torch" not in backends:
        backends.append("torch")
    rows = []
    print(f"convkit bench: CPU, fp32, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"median time per call (us) and ratio to torch (<1 is faster)")
    head = f"{'shape':<34}" + "".join(f"{b:>20}" for b in backends)
    print(head)
    print("-" * len(head))
    for shape in DEFAULT_SHAPES:
        args_ = shape.inputs()
        times = {}
        for b in backends:
            if b == "naive" and math.prod(shape.out_hw()) > NAIVE_MAX_OUTPUT_PIXELS:
                continue
            with torch.no_grad():
                times[b] = _time(shape.call(b), args_, args.min_run_time)
        ref = times["torch"]
        cells = "".join(f"{times[b] * 1e6:>11.1f} ({times[b] / ref:4.2f}x)" if b in times else f"{'-':>20}"
                        for b in backends)
        print(f"{shape.describe():<34}{cells}", flush=True)
        rows.append({"shape": shape.id, "desc": shape.describe(), "op": shape.op,
                     "times_s": times, "ratio_to_torch": {b: t / ref for b, t in times.items()}})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0
