"""python -m convkit bench (convkit/bench.py, _bench_measure.py, _bench_report.py) and benchmarks/report.py."""
import copy
import json
import os
import subprocess
import sys

import pytest
import torch

import convkit
from convkit import _bench_measure as M
from convkit import _bench_report as R
from convkit.bench import QUICK_SCALING_AXES, QUICK_SHAPES, SHAPES_BY_ID, parse_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RSS = pytest.mark.skipif(not M.rss_probe_available(), reason="needs Linux /proc/self/clear_refs")


def bench(*args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "convkit", "bench", *args], capture_output=True, text=True, cwd=ROOT,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One `--quick` run, shortened: the suite's shapes and scaling points, a tiny timing budget, one thread,
    naive only where a call takes a few milliseconds."""
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    out = bench("--quick", "--min-run-time", "0.001", "--rounds", "1", "--threads", "1", "--naive-max-s", "0.05",
                "--json", str(path))
    return path, json.loads(path.read_text()), out


def test_quick_json_has_a_torch_baseline_row_per_shape_and_direction(quick):
    _, d, out = quick
    assert d["suite"] == "quick" and d["settings"]["threads"] == 1
    assert {(r["shape"], r["n"], r["direction"]) for r in d["rows"]} == {
        (s.id, s.n, dr) for s in QUICK_SHAPES for dr in ("fwd", "fwdbwd")}
    for r in d["rows"]:
        t = r["backends"]["torch"]
        assert t["time_s"] > 0 and t["ratio_to_torch"] == 1.0
        assert set(r["backends"]) | set(r["skipped"]) == set(convkit.available_backends("cpu"))
        for c in r["backends"].values():
            assert c["time_s"] > 0 and c["rate"] > 0 and len(c["times_s"]) == 1
            assert c["rate"] == pytest.approx(r["work"] / c["time_s"] / 1e9)
    assert [(p["axis"], p["value"]) for p in d["scaling"]] == [(a, v) for a, vs in QUICK_SCALING_AXES.items()
                                                                 for v in vs]
    m = d["machine"]
    assert m["cpu_model"] and m["torch"] == torch.__version__ and m["threads"] == 1 and "allocator_env" in m
    assert "corr2d forward (no_grad)" in out and "pool2d forward + backward" in out


def test_quick_naive_runs_only_where_a_call_is_short(quick):
    _, d, _ = quick
    rows = {(r["shape"], r["direction"]): r for r in d["rows"]}
    assert "naive" in rows[("T0", "fwd")]["backends"]          # the d2l example: a millisecond
    assert "naive" in rows[("X1", "fwdbwd")]["skipped"]        # 112x112 windows, each backward input-sized
    assert d["settings"]["naive_max_s"] == 0.05


@RSS
def test_quick_memory_is_measured_and_sees_the_column_buffer(quick):
    _, d, _ = quick
    r = next(r for r in d["rows"] if r["shape"] == "R3" and r["direction"] == "fwd")
    s = SHAPES_BY_ID["R3"]
    out_bytes = 4 * s.n * s.k * s.h * s.w
    columns = 4 * s.n * s.c * 9 * s.h * s.w      # unfold's im2col matrix
    mem = {b: c["mem_bytes"] for b, c in r["backends"].items()}
    assert mem["unfold"] >= columns + out_bytes * 0.9
    assert out_bytes * 0.9 <= mem["compiled"] < columns / 2   # per-thread tiles, no im2col buffer
    assert all(c.get("mem_bytes") is not None for r in d["rows"] for c in r["backends"].values())


def test_compare_and_plot_on_a_saved_result(quick, tmp_path):
    path, d, _ = quick
    older = copy.deepcopy(d)
    for r in older["rows"]:
        for c in r["backends"].values():
            c["time_s"] *= 2
    old = tmp_path / "old.json"
    old.write_text(json.dumps(older))
    out = bench("--load", str(path), "--compare", str(old), "--plot", str(tmp_path / "plots"))
    assert "speedup = old time / new time" in out
    geo = [line for line in out.splitlines() if line.startswith("geometric mean")]
    assert len(geo) == 4 and all(line.split()[-1] == "2.00x" for line in geo)
    for name in ("speedup_corr2d.png", "speedup_pool2d.png", "scaling.png"):
        png = (tmp_path / "plots" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_report_generates_benchmarks_md_and_the_readme_table(quick, tmp_path):
    path, _, _ = quick
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:headline -->\nold typed table\n<!-- /bench:headline -->\nrest\n")
    out_md = tmp_path / "BENCHMARKS.md"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "report.py"), str(path), "--out",
                        str(out_md), "--plots", str(tmp_path / "plots"), "--readme", str(readme)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    md = out_md.read_text()
    for heading in ("## Machine", "## Fairness", "## Summary", "### corr2d forward (no_grad)",
                    "## Scaling study", "## GPU"):
        assert heading in md
    assert "This main job has no GPU run yet" in md and "](plots/scaling.png)" in md
    text = readme.read_text()
    assert "old typed table" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    assert "| R3 N1 64->64 56x56 k3x3 s1 p1 |" in text and "geometric mean" in text


def test_peak_probes_are_plausible():
    p = M.measure_peaks("cpu", rounds=1, min_run_time=0.01)
    assert 0.5 < p["gemm_gflops"] < 100_000      # a CPU between a slow core and far beyond any server
    assert 0.1 < p["copy_gbs"] < 5_000
    assert p["threads"] == torch.get_num_threads()
    if "compiled" in convkit.available_backends():
        # register-only FMA chains: no kernel, sgemm included, can beat them. The two are timed at different
        # moments on a shared machine whose rates move up to ~1.6x between runs, so only a 2x excess (an FMA
        # count or thread count gone wrong) is read as a fault. A peak is a maximum: one probe that caught the
        # machine busy (seen once in a full run) is retried twice, which a systematic count error survives.
        from convkit.backends import compiled
        fma = p["fma_gflops"]
        if p["gemm_gflops"] >= 2.0 * fma:
            fma = max([fma] + [compiled.fma_peak() for _ in range(2)])
        assert 0.5 < fma < 100_000 and p["gemm_gflops"] < 2.0 * fma


def test_fma_peak_runs_on_every_thread_and_checks_its_argument():
    # the GFLOP/s figure counts get_num_threads() threads of chains: each must have run some. Checked by which
    # pool threads ran, not by timing (a 1-vs-2-thread rate comparison fails on a shared, noisy machine).
    if "compiled" not in convkit.available_backends():
        pytest.skip("convkit._C is not built")
    from convkit import _C
    with pytest.raises(ValueError, match="iters must be >= 1"):
        _C.fma_peak(0)
    before = torch.get_num_threads()
    try:
        ran = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            gflops, ran[threads] = _C.fma_peak(100_000)
            assert gflops > 0
    finally:
        torch.set_num_threads(before)
    assert ran == {1: 1, 2: 2}


def test_timing_runs_at_the_thread_count_set():
    # torch.utils.benchmark.Timer sets num_threads=1 unless told otherwise: every call must see the count set
    seen = []
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        M.time_call(lambda: seen.append(torch.get_num_threads()), 0.001)
        M.time_call(lambda: seen.append(torch.get_num_threads()), 0.001, single=True)
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {2}


@RSS
def test_memory_probe_measures_what_a_call_touches():
    big = 64 * 2**20
    assert big <= M.peak_extra_bytes(lambda: torch.empty(big // 4).fill_(1.0)) < big + 8 * 2**20
    # allocated and freed inside the call: the high-water mark still sees it (to the kernel's RSS batching)
    assert M.peak_extra_bytes(lambda: torch.ones(big // 4).sum()) >= 0.98 * big
    assert M.peak_extra_bytes(lambda: 1 + 1) < 2**20


def test_parse_shapes_ids_and_custom_specs():
    r3, conv, pool = parse_shapes("R3;8,64,56,48,32,3,5,2,1;max:4,16,32,32,3,3,2,1")
    assert r3 == SHAPES_BY_ID["R3"]
    assert (conv.n, conv.c, conv.h, conv.w, conv.k, conv.kernel, conv.stride, conv.padding, conv.op) == (
        8, 64, 56, 48, 32, (3, 5), (2, 2), (1, 1), "corr2d")
    assert (pool.n, pool.c, pool.kernel, pool.stride, pool.op, pool.kind) == (4, 16, (3, 3), (2, 2), "max", "pool2d")
    assert [s.id for s in parse_shapes("R3,P1")] == ["R3", "P1"]
    with pytest.raises(ValueError, match="unknown shape id 'R99'"):
        parse_shapes("R99")
    with pytest.raises(ValueError, match="9 integers"):
        parse_shapes("8,64,56,56,64,3,3,1")


def test_a_custom_shape_runs_end_to_end(tmp_path):
    out = bench("--shapes", "2,3,9,9,4,3,3,1,1", "--backends", "compiled,unfold", "--direction", "fwd",
                "--min-run-time", "0.001", "--rounds", "1", "--no-memory", "--json", str(tmp_path / "c.json"))
    (row,) = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert row["desc"] == "custom1 N2 3->4 9x9 k3x3 s1 p1" and row["desc"] in out
    assert set(row["backends"]) == {"unfold", "compiled", "torch"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_unavailable_is_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "convkit", "bench", "--device", "cuda"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "CUDA is not available" in r.stderr and not r.stdout


def test_tables_format_a_row():
    s = SHAPES_BY_ID["T0"]
    row = {"op": "corr2d", "direction": "fwd", "shape": "T0", "n": 1, "desc": s.describe(), "unit": "GFLOP/s",
           "work": s.flops(), "skipped": {},
           "backends": {"compiled": {"time_s": 2e-6, "rate": 0.1, "pct_peak": 0.5, "ratio_to_torch": 0.5,
                                     "mem_bytes": 4096},
                        "torch": {"time_s": 4e-6, "rate": 0.05, "pct_peak": 0.2, "ratio_to_torch": 1.0,
                                  "mem_bytes": 0}}}
    text = R.format_table([row])
    assert "2 us" in text and "0.50x" in text and "4 KiB" in text
    md = R.format_table([row], markdown=True)
    assert md.splitlines()[0] == "| shape | compiled | torch |" and "**0.50x** 2 us" in md


def test_bench_conv_interleaves_the_fma_probe(tmp_path):
    # benchmarks/bench_conv.py: every row carries the FMA probe timed in its own rounds, and the table's
    # "% FMA peak" is against it (the start-of-run figure stays in pct_of_fma)
    if "compiled" not in convkit.available_backends():
        pytest.skip("convkit._C is not built")
    path = tmp_path / "conv.json"
    script = os.path.join(ROOT, "benchmarks", "bench_conv.py")
    subprocess.run([sys.executable, script, "--shapes", "T0", "--n", "1", "--rounds", "2", "--direction", "fwd",
                    "--min-run-time", "0.01", "--json", str(path)], check=True, capture_output=True, text=True)
    row = json.loads(path.read_text())["rows"][0]
    assert row["fma_gflops_interleaved"] > 0.5 and set(row["pct_of_fma_interleaved"]) == set(row["median_s"])
    assert "probe" not in row["median_s"]
    pct = row["pct_of_fma_interleaved"]["compiled:auto"]
    assert pct == pytest.approx(100 * row["gflops"]["compiled:auto"] / row["fma_gflops_interleaved"])
    out = subprocess.run([sys.executable, script, "--table", str(path)], check=True, capture_output=True,
                         text=True).stdout
    assert "FMA probe GF/s" in out and f"{row['fma_gflops_interleaved']:.0f} |" in out
