"""Measuring for the benchmarks: one timing loop, the machine's reference rates, peak memory, machine info.

Used by `python -m convkit bench` (convkit/bench.py), benchmarks/*.py and benchmarks/test_bench.py.

Timing: torch.utils.benchmark.Timer, CUDA synchronised (an explicit torch.cuda.synchronize timer). Every
backend of a case is called once first (warm-up: code pages, oneDNN primitives, cuDNN's algorithm search),
then the backends are timed in turn, `rounds` times, starting each round one backend later; a measurement is
blocked_autorange (the median of blocks of calls) or, for a call longer than min_run_time, one call. The
reported time is the median over the rounds: a slow period of the machine hits every backend alike.

Memory: the peak extra memory of one call, measured, output included (and the gradients, for fwdbwd).
On CPU it is the rise of the process's resident set high-water mark (Linux: VmHWM, reset by writing 5 to
/proc/self/clear_refs) over its resident set before the call, in a fresh subprocess, after a warm-up call,
gc and malloc_trim(0) (so that memory freed earlier has to be faulted in again and shows). It sees every
allocation that touches memory (torch's CPU allocator, oneDNN's scratchpads, the C++ kernels' own buffers);
tracemalloc would see none of these, and torch.profiler's memory events only c10's allocator. Resolution:
pages (4 KiB) plus the kernel's per-thread RSS batching (tens of KiB). After the warm-up call, one call is
measured, or the smaller of two for calls under 20 ms.
On CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus the allocation before.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import timeit

import torch
from torch.utils import benchmark

TF32 = "torch-tf32"  # the pseudo-backend: torch.nn.functional with TF32 on (CUDA fp32 only)


# --------------------------------------------------------------------------- timing
def _sync_timer(device):
    if torch.device(device).type != "cuda":
        return timeit.default_timer

    def timer():
        torch.cuda.synchronize()
        return timeit.default_timer()
    return timer


def configure_device(device) -> dict:
    """torch at its best settings on GPU: cudnn.benchmark on, TF32 off for the fp32 baseline. Returns them."""
    if torch.device(device).type != "cuda":
        return {}
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return {"cudnn_benchmark": True, "tf32": False, "tf32_column": TF32}


def _with_tf32(call):
    def f():
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        try:
            return call()
        finally:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    return f


def make_call(fn, args, direction: str, grad_output=None):
    """A no-argument callable for one measurement of fn(*args).

    fwd: under no_grad. fwdbwd: forward, then the gradients of every args that requires grad (pass args
    that do) for grad_output. bwd: the backward alone, through one graph kept alive.
    """
    if direction == "fwd":
        def fwd():
            with torch.no_grad():
                return fn(*args)
        return fwd
    inputs = [a for a in args if a.requires_grad]
    if direction == "fwdbwd":
        return lambda: torch.autograd.grad(fn(*args), inputs, grad_output)
    y = fn(*args)
    return lambda: torch.autograd.grad(y, inputs, grad_output, retain_graph=True)


def case_calls(shape, direction: str, backends, dtype=torch.float32, device="cpu",
               memory_format=torch.contiguous_format) -> dict:
    """{backend: call} for one shape and direction, on one set of inputs that every backend shares."""
    grad = direction != "fwd"
    args = shape.inputs(dtype, device, requires_grad=grad, memory_format=memory_format)
    gy = None
    if grad:
        g = torch.Generator().manual_seed(1)
        gy = torch.randn(shape.out_shape(), generator=g).to(device, dtype).contiguous(memory_format=memory_format)
    calls = {}
    for b in backends:
        call = make_call(shape.call("torch" if b == TF32 else b), args, direction, gy)
        calls[b] = _with_tf32(call) if b == TF32 else call
    return calls


@contextlib.contextmanager
def time_limit(seconds):
    """Raise TimeoutError in the block after `seconds` (POSIX main thread; elsewhere no limit).

    For naive, whose Python loop the signal interrupts between two torch ops: on a loaded machine its
    thousands of tiny parallel ops can take 100x their usual time."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"over {seconds:.1f} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def warm_up(call, device="cpu", limit_s=None) -> float:
    """One call; its time in seconds. limit_s: give up (TimeoutError) after that long."""
    timer = _sync_timer(device)
    t0 = timer()
    with time_limit(limit_s):
        call()
    return timer() - t0


def time_call(call, min_run_time: float, device="cpu", single: bool = False) -> float:
    """One measurement: the median of blocked_autorange's blocks, or one call's time if single.

    At torch.get_num_threads() threads: torch.utils.benchmark.Timer's own default is num_threads=1, which it
    sets for the measurement (every CPU figure before this fix was a one-thread figure).
    """
    t = benchmark.Timer("call()", globals={"call": call}, timer=_sync_timer(device),
                        num_threads=torch.get_num_threads())
    return (t.timeit(1) if single else t.blocked_autorange(min_run_time=min_run_time)).median


def time_interleaved(calls: dict, rounds: int, min_run_time: float, device="cpu", first: dict | None = None,
                     limits: dict | None = None) -> dict:
    """{name: [seconds per round]}: every call timed once per round, the order rotating by one each round.

    first: each call's warm-up time if the caller has warmed them up already (else done here); a call
    slower than min_run_time is then timed one call at a time. limits: {name: seconds} a measurement may
    take; a call that overruns is dropped (absent from the result).
    """
    first = dict(first) if first else {}
    limits = limits or {}
    for name, call in calls.items():
        if name not in first:
            first[name] = warm_up(call, device)
    names = list(calls)
    times = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            if name not in times:
                continue
            try:
                with time_limit(limits.get(name)):
                    times[name].append(time_call(calls[name], min_run_time, device,
                                                 single=first[name] >= min_run_time))
            except TimeoutError:
                del times[name]
    return times


def time_case(shape, direction, backends, dtype, device, rounds, min_run_time, peaks, naive_max_s=None) -> dict:
    """One row of the tables: every backend on one shape and direction, with rates against `peaks`."""
    from .bench import NAIVE_MAX_S, naive_estimate_s
    naive_max_s = NAIVE_MAX_S if naive_max_s is None else naive_max_s
    itemsize = torch.empty((), dtype=dtype).element_size()
    skipped, first, calls = {}, {}, {}
    # naive last: its warm-up runs under a time limit, whose signal must not land in a lazy import
    # (autograd's first use imports modules) that the other backends' warm-ups have done by then
    calls_all = case_calls(shape, direction, sorted(backends, key=lambda b: b == "naive"), dtype, device)
    for b, call in calls_all.items():
        if b == "naive" and (est := naive_estimate_s(shape, direction)) > naive_max_s:
            skipped[b] = f"estimated {est:.1f} s per call"
            continue
        try:
            first[b] = warm_up(call, device, limit_s=1.5 * naive_max_s if b == "naive" else None)
        except TimeoutError:
            skipped[b] = f"one call took over {1.5 * naive_max_s:.1f} s"
            continue
        except Exception as e:  # a backend that does not run this dtype/device: say so in its cell
            skipped[b] = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
            continue
        calls[b] = call
    limit = 3 * naive_max_s + min_run_time
    times = time_interleaved(calls, rounds, min_run_time, device, first, limits={"naive": limit})
    if "naive" in calls and "naive" not in times:
        skipped["naive"] = f"a measurement took over {limit:.1f} s"
    work = shape.work(direction, itemsize)
    # corr2d: the FMA peak where measured (the compiled backend's probe); the gemm rate is no ceiling where
    # ATen's BLAS runs at a fraction of it (MKL's AVX2 code on Zen 5: 0.41 of the FMA peak)
    ref_key = ("fma_gflops" if peaks.get("fma_gflops") else "gemm_gflops") if shape.kind == "corr2d" else "copy_gbs"
    ref = peaks[ref_key]
    med = {b: statistics.median(v) for b, v in times.items()}
    t_torch = med.get("torch")
    cells = {b: {"time_s": t, "times_s": times[b], "first_s": first[b], "rate": work / t / 1e9,
                 "pct_peak": 100 * work / t / 1e9 / ref, "ratio_to_torch": t / t_torch if t_torch else None}
             for b, t in med.items()}
    return {"op": shape.kind, "direction": direction, "shape": shape.id, "n": shape.n, "desc": shape.describe(),
            "spec": dataclasses.asdict(shape), "unit": "GFLOP/s" if shape.kind == "corr2d" else "GB/s",
            "work": work, "pct_of": ref_key, "backends": cells, "skipped": skipped}


# --------------------------------------------------------------------------- the machine's reference rates
def measure_peaks(device="cpu", dtype=torch.float32, rounds: int = 5, min_run_time: float = 0.3) -> dict:
    """The rates the tables quote percentages of, measured here, now, at the current thread count.

    gemm_gflops: torch.mm of two n x n matrices in `dtype` (MKL/oneDNN sgemm on CPU, cuBLAS with TF32 off
    on GPU) in GFLOP/s: an attainable FMA rate, not the datasheet one. copy_gbs: a 256 MiB tensor's copy_
    in GB/s, counting bytes read + written. fma_gflops (CPU, fp32, when convkit._C is built): register-only
    vector FMA chains on every thread (csrc/cpu/peak.cpp), the ceiling of any fp32 kernel here; MKL's sgemm
    reaches 70-80 % of it on this machine. Medians over `rounds` measurements.
    """
    device = torch.device(device)
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device).to(dtype)
    src = torch.ones(64 * 2**20, device=device)
    dst = torch.empty_like(src)
    mm, cp = [], []
    for _ in range(rounds):
        mm.append(2 * n**3 / time_call(lambda: a @ a, min_run_time, device) / 1e9)
        cp.append(2 * src.numel() * src.element_size() / time_call(lambda: dst.copy_(src), min_run_time, device) / 1e9)
    out = {"device": device.type, "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
           "gemm_n": n, "gemm_gflops": statistics.median(mm), "copy_gbs": statistics.median(cp),
           "gemm_all": mm, "copy_all": cp}
    if device.type == "cpu":
        from .backends import compiled
        if compiled.available():
            fm = [compiled.fma_peak() for _ in range(rounds)]
            out.update(fma_gflops=statistics.median(fm), fma_all=fm)
    return out


# --------------------------------------------------------------------------- memory
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def rss_probe_available() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _vm("VmHWM")
        return True
    except OSError:
        return False


def _empty_convkit_cache() -> None:
    try:
        from convkit.backends import compiled
    except Exception:  # noqa: BLE001 - measuring something without convkit
        return
    compiled.empty_cache()


def peak_extra_bytes(call, device="cpu", repeats: int = 2) -> int:
    """The peak memory one call adds (see the module docstring), the smallest of `repeats` after a warm-up."""
    device = torch.device(device)
    out = call()  # warm-up: lazily loaded code, JIT kernels, caches
    del out
    best = None
    libc = _libc()
    for _ in range(repeats):
        gc.collect()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            out = call()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated(device) - base
        else:
            _empty_convkit_cache()  # else convkit's outputs reuse resident blocks and their memory does not show
            if libc is not None:
                libc.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # VmHWM := VmRSS
            base = _vm("VmRSS")
            out = call()
            peak = _vm("VmHWM") - base
        del out
        best = peak if best is None else min(best, peak)
    return max(best, 0)


def _memory_cases(cases, device, dtype):
    """Yields (bytes or None, error or None) per (shape, direction, backend, repeats), measured in this process."""
    for shape, direction, backend, repeats in cases:
        try:
            call = case_calls(shape, direction, [backend], dtype, device)[backend]
            with time_limit(10.0 if backend == "naive" else None):
                nbytes = peak_extra_bytes(call, device, repeats)
            yield nbytes, None
        except Exception as e:
            yield None, f"{type(e).__name__}: {e}"[:200]
        finally:
            call = None


def measure_memory(cases, device="cpu", dtype=torch.float32, threads=None, progress=None) -> list:
    """[(bytes or None, error or None)] for each (shape, direction, backend, repeats).

    CPU: in a fresh subprocess (one for all cases), with the same thread count. CUDA: in this process.
    """
    device = torch.device(device)
    progress = progress or (lambda: None)
    if device.type == "cuda":
        out = []
        for r in _memory_cases(cases, device, dtype):
            out.append(r)
            progress()
        return out
    if not rss_probe_available():
        return [(None, "needs Linux /proc/self/clear_refs")] * len(cases)
    # naive last, as in time_case (its time limit must not interrupt a lazy import)
    order = sorted(range(len(cases)), key=lambda i: cases[i][2] == "naive")
    job = {"dtype": str(dtype).replace("torch.", ""), "threads": threads or torch.get_num_threads(),
           "cases": [[dataclasses.asdict(s), d, b, r] for s, d, b, r in (cases[i] for i in order)]}
    out = []
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", "from convkit._bench_measure import _memory_worker; "
                                 "_memory_worker()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                text=True)
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        for line in proc.stdout:
            r = json.loads(line)
            out.append((r["bytes"], r["error"]))
            progress()
        proc.wait()
        stderr.seek(0)
        err = stderr.read()
    if len(out) < len(cases):
        reason = f"the memory subprocess exited with {proc.returncode}: {err.strip().splitlines()[-1:]}"
        out += [(None, reason)] * (len(cases) - len(out))
    result = [None] * len(cases)
    for i, r in zip(order, out):
        result[i] = r
    return result


def _memory_worker():
    """The subprocess of measure_memory: reads the job (JSON) on stdin, writes one JSON line per case."""
    from .bench import Shape
    job = json.load(sys.stdin)
    torch.set_num_threads(job["threads"])
    gc.freeze()  # torch's many import-time objects: gc.collect() before each measurement then takes ~0 ms, not 50
    cases = [(Shape.from_dict(s), d, b, r) for s, d, b, r in job["cases"]]
    for nbytes, err in _memory_cases(cases, torch.device("cpu"), getattr(torch, job["dtype"])):
        print(json.dumps({"bytes": nbytes, "error": err}), flush=True)


# --------------------------------------------------------------------------- machine info
def _cpuinfo() -> dict:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return {}
    d = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        k = k.strip()
        if k in ("model name", "flags") and k not in d:
            d[k] = v.strip()
    return d


ALLOCATOR_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "LD_PRELOAD",
                 "PYTORCH_CUDA_ALLOC_CONF")
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16")


def machine_info(device="cpu") -> dict:
    from ._info import info
    ci = _cpuinfo()
    flags = set(ci.get("flags", "").split())
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    d = info()
    gpu = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        gpu = {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "capability": f"{p.major}.{p.minor}",
               "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return {
        "cpu_model": ci.get("model name") or platform.processor() or platform.machine(),
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "torch_cpu_capability": d["cpu_capability"],
        "cores": os.cpu_count(), "cores_available": affinity, "threads": torch.get_num_threads(),
        "os": platform.platform(), "python": d["python"], "torch": d["torch"], "convkit": d["convkit"],
        "convkit_commit": commit, "convkit_build": d["compiled"],
        "allocator_env": {k: os.environ[k] for k in ALLOCATOR_ENV if k in os.environ} or "default",
        "device": torch.device(device).type, "gpu": gpu,
    }
