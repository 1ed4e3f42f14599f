"""convkit.explain: what one corr2d call costs and what each backend does with it.

    >>> print(convkit.explain((8, 64, 56, 56), (64, 64, 3, 3), padding=1))

reports the output shape, the FLOPs, the minimum bytes moved (each input, weight and output element
once), the arithmetic intensity, and per backend the algorithm it would run here and the extra memory
it needs (im2col's column buffer is kh*kw times the input; the direct paths need only small tiles).
The compiled backend's choice comes from the kernel's own planner (convkit._C.corr2d_plan, the function
the CPU kernels call), so it cannot drift from what runs. With `peak_gflops` and `bandwidth_gbs` (e.g.
from benchmarks/machine_peaks.py) it also gives the roofline bound: the fastest any implementation
could be on that machine.
"""
from __future__ import annotations

import dataclasses

import torch

from . import _shapes
from .backends import get_backend

__all__ = ["explain", "Explanation"]


@dataclasses.dataclass
class Explanation:
    input_shape: tuple
    weight_shape: tuple
    output_shape: tuple
    stride: tuple
    padding: tuple          # (top, bottom, left, right)
    dilation: tuple
    groups: int
    dtype: str
    flops: int              # forward multiply-adds x 2; backward (grad_input + grad_weight) is twice this
    min_bytes: int          # input + weight + bias + output, each element once
    intensity: float        # flops / min_bytes
    backends: dict          # name -> {"forward": ..., "grad_input": ..., "grad_weight": ..., "extra_bytes": ...}
    notes: list
    roofline_ms: float | None = None
    bound: str | None = None  # "compute" or "memory" (with peak_gflops and bandwidth_gbs)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        pads = self.padding
        lines = [
            f"corr2d input {self.input_shape} weight {self.weight_shape} -> output {self.output_shape} "
            f"({self.dtype}; stride {self.stride}, padding (t, b, l, r) {pads}, dilation {self.dilation}, "
            f"groups {self.groups})",
            f"  forward FLOPs {_si(self.flops)} (backward: 2x), minimum bytes moved {_bytes(self.min_bytes)}, "
            f"arithmetic intensity {self.intensity:.1f} FLOP/byte",
        ]
        if self.roofline_ms is not None:
            lines.append(f"  roofline: {self.bound}-bound here, at best {self.roofline_ms:.3f} ms forward")
        for name, b in self.backends.items():
            lines.append(f"  {name:9s} forward: {b['forward']}")
            for key in ("grad_input", "grad_weight"):
                if b.get(key):
                    lines.append(f"  {'':9s} {key}: {b[key]}")
            lines.append(f"  {'':9s} extra memory: {b['extra']}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _si(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:g} "


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def explain(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, *, dtype=torch.float32,
            device="cpu", algo="auto", bias=True, peak_gflops=None, bandwidth_gbs=None) -> Explanation:
    """Cost and per-backend algorithm of convkit.corr2d on tensors of these shapes (nothing is computed).

    input_shape (N, C, H, W), weight_shape (O, C/groups, kh, kw); stride, padding ("same", "valid", int,
    pair or (top, bottom, left, right)), dilation and groups as in convkit.corr2d; algo as corr2d's
    (what the compiled backend is forced to); peak_gflops / bandwidth_gbs: the machine's, for the roofline.
    """
    from .functional import ALGOS, _conv_padding, _pair

    shapes = []
    for name, shape in (("input_shape", input_shape), ("weight_shape", weight_shape)):
        if not (isinstance(shape, (tuple, list, torch.Size)) and len(shape) == 4
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in shape)):
            raise ValueError(f"{name} must be 4 non-negative ints, got {shape!r}")
        shapes.append(tuple(int(v) for v in shape))
    (n, c, h, w), (o, cg, kh, kw) = shapes
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if c != cg * groups or o % groups:
        raise ValueError(f"input_shape has {c} channels and weight_shape {weight_shape} with groups={groups} "
                         f"expects {cg * groups}; out_channels must be divisible by groups")
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {', '.join(map(repr, ALGOS))}, got {algo!r}")
    dtype = torch.empty(0, dtype=dtype).dtype
    device = torch.device(device)
    stride = _pair("stride", stride, minimum=1)
    dilation = _pair("dilation", dilation, minimum=1)
    pads = _conv_padding(padding, (h, w), (kh, kw), stride, dilation)
    ho = _shapes.conv_out_size(h, kh, pads[0] + pads[1], stride[0], dilation[0])
    wo = _shapes.conv_out_size(w, kw, pads[2] + pads[3], stride[1], dilation[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"kernel {(kh, kw)} with dilation {dilation} is larger than the padded input")
    es = dtype.itemsize
    flops = 2 * n * o * ho * wo * cg * kh * kw
    min_bytes = es * (n * c * h * w + o * cg * kh * kw + (o if bias else 0) + n * o * ho * wo)
    cols = n * c * kh * kw * ho * wo * es

    backends = {}
    backends["naive"] = {
        "forward": f"Python loop over the {ho * wo} output positions, one einsum each (autograd for the backward)",
        "extra": f"a padded copy of the input ({_bytes(n * c * (h + pads[0] + pads[1]) * (w + pads[2] + pads[3]) * es)})",
    }
    col_buf = min(cols, get_backend("unfold").get_memory_budget())
    backends["unfold"] = {
        "forward": "im2col (F.unfold) + batched matmul, in chunks under the memory budget",
        "grad_input": "W^T dY matmul + fold (col2im), columns recomputed per chunk",
        "grad_weight": "dY cols^T matmul, columns recomputed per chunk",
        "extra": f"column buffer {_bytes(col_buf)} per chunk (the full im2col matrix is {_bytes(cols)}, "
                 f"{kh * kw}x the input)",
    }
    compiled = get_backend("compiled")
    if compiled.available() and device.type == "cpu":
        try:
            plan = compiled._C.corr2d_plan((n, c, h, w), (o, cg, kh, kw), stride, pads, dilation, groups, algo,
                                           4 if es < 4 else es)
            (f_alg, f_ws), (gx_alg, gx_ws), (gw_alg, gw_ws) = plan
            backends["compiled"] = {
                "forward": f"{f_alg} [algo={algo!r}]", "grad_input": gx_alg, "grad_weight": gw_alg,
                "extra": f"forward {_bytes(f_ws)}, grad_input {_bytes(gx_ws)}, grad_weight {_bytes(gw_ws)} "
                         f"(upper bounds: per-thread tiles and packed copies; 'im2col' and 'winograd' "
                         f"hold transformed copies of the data)",
                "extra_bytes": {"forward": f_ws, "grad_input": gx_ws, "grad_weight": gw_ws},
            }
        except ValueError as e:
            backends["compiled"] = {"forward": f"not applicable: {e}", "extra": "-"}
    elif compiled.available() and device.type == "cuda":
        backends["compiled"] = {
            "forward": "CUDA: implicit GEMM (shared-memory tiles, no im2col buffer); direct kernel for depthwise "
                       "and few-channel inputs (csrc/cuda)",
            "extra": "the weight packed once per call (|W|); split-K partial sums when few tiles would leave SMs "
                     "idle (forward, grad_input at stride 1, grad_weight, grad_bias), at most 256 MiB"}
    else:
        backends["compiled"] = {"forward": f"not available here ({compiled.describe()})", "extra": "-"}
    if device.type == "cpu":
        reorder = n * c * h * w * es + n * o * ho * wo * es
        backends["torch"] = {
            "forward": "oneDNN: blocked direct convolution (nChw16c, JIT AVX-512)"
                       + ("; depthwise kernel" if groups > 1 and groups == c and cg == 1 else "")
                       + ("; the blocked layout pads channels to a multiple of 16" if c % 16 else ""),
            "extra": f"NCHW <-> blocked reorders of input and output on every call (~{_bytes(reorder)}), "
                     f"plus a blocked copy of the weights",
        }
    else:
        backends["torch"] = {"forward": "cuDNN (the algorithm cudnn.benchmark picks)",
                             "extra": "cuDNN workspace (algorithm dependent)"}

    notes = []
    if flops < 2e5:
        notes.append("tiny: a few microseconds of call overhead dominate the arithmetic; use the eager path "
                     "(no autograd) or fuse")
    if cg * kh * kw < 32:
        notes.append(f"short reduction ({cg * kh * kw} multiply-adds per output): GEMM tiles are mostly empty; "
                     f"direct loops vectorised along the output row do better")
    if groups > 1 and cg == 1:
        notes.append("depthwise: little arithmetic per byte, memory-bound; each channel is its own small problem")
    intensity = flops / max(min_bytes, 1)
    if "compiled" in backends and device.type == "cpu" and compiled.available():
        rate = compiled._C.blas_rate(False)  # what the plan above used, if it needed it (never measured here)
        if rate["source"] != "not measured":
            how = (f"sgemm at {rate['share']:.2f} of the FMA peak here" if rate["source"] == "measured"
                   else f"CONVKIT_BLAS / set_blas_preference: {rate['source']}")
            notes.append(f"BLAS: {how}; algo='auto' " + ("takes its BLAS-based paths (Winograd's grad_weight products, "
                         "column blocks, 1x1 per image)" if rate["preferred"] else "keeps to convkit's own kernels "
                         "except Winograd's grad_weight on large maps (BLAS under 0.55 of the peak)"))
    if kh * kw > 1:
        notes.append(f"im2col multiplies the input by {kh * kw} ({_bytes(cols)}): the direct and Winograd paths "
                     f"avoid that buffer")
    ex = Explanation(tuple(shapes[0]), tuple(shapes[1]), (n, o, ho, wo), stride, pads, dilation, groups,
                     str(dtype).replace("torch.", ""), flops, min_bytes, intensity, backends, notes)
    if peak_gflops and bandwidth_gbs:
        t_compute = flops / (peak_gflops * 1e9)
        t_memory = min_bytes / (bandwidth_gbs * 1e9)
        ex.bound = "compute" if t_compute >= t_memory else "memory"
        ex.roofline_ms = max(t_compute, t_memory) * 1e3
        if ex.bound == "memory":
            notes.append(f"memory-bound: intensity {intensity:.1f} is below the machine's "
                         f"{peak_gflops / bandwidth_gbs:.1f} FLOP/byte ridge point")
    return ex
