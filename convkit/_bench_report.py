"""Tables, comparisons and plots of a `python -m convkit bench` result (the JSON document of convkit/bench.py).

Text for the terminal, markdown for benchmarks/BENCHMARKS.md and the README (benchmarks/report.py), PNGs
with matplotlib. Everything here reads the result; nothing measures.
"""
from __future__ import annotations

import math
import os

OPS = ("corr2d", "pool2d")
DIRECTIONS = {"fwd": "forward (no_grad)", "fwdbwd": "forward + backward (gradients of every input)"}
SCALING_AXES = {"H": "input size H = W", "C": "channels C (in = out)", "k": "kernel size k x k"}


def fmt_time(t: float) -> str:
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms" if t < 0.1 else f"{t * 1e3:.0f} ms"
    return f"{t * 1e6:.3g} us"


def fmt_bytes(b) -> str:
    if b is None:
        return "?"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            v = b / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{b} B"


def fmt_rate(r: float) -> str:
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else f"{r:.0f}"


def fmt_ratio(r) -> str:
    if r is None:
        return "-"
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def groups(result):
    """(op, direction, rows) for each table, in the suite's order."""
    for op in OPS:
        for d in DIRECTIONS:
            rows = [r for r in result["rows"] if r["op"] == op and r["direction"] == d]
            if rows:
                yield op, d, rows


def table_backends(rows) -> list[str]:
    """The columns of a table: the backends that ran in at least one row, torch last."""
    seen = []
    for r in rows:
        seen += [b for b in r["backends"] if b not in seen]
    return sorted(seen, key=lambda b: ("naive", "unfold", "compiled", "torch", "torch-tf32").index(b)
                  if b in ("naive", "unfold", "compiled", "torch", "torch-tf32") else 2.5)


def reference(result, op) -> str:
    p = result["peaks"]
    # the reference the rows' % was taken against (runs before session 18: the gemm rate)
    if op == "corr2d" and any(r.get("pct_of") == "fma_gflops" for r in result.get("rows", []) if r["op"] == op):
        return f"{p['fma_gflops']:.0f} GFLOP/s (FMA peak, register-only {p['dtype']} FMA chains)"
    if op == "corr2d":
        return f"{p['gemm_gflops']:.0f} GFLOP/s ({p['dtype']} gemm {p['gemm_n']}^3)"
    return f"{p['copy_gbs']:.1f} GB/s (copy_, read + write)"


def header(result) -> list[str]:
    m, s = result["machine"], result["settings"]
    dev = m["gpu"]["name"] if s["device"] == "cuda" and m.get("gpu") else m["cpu_model"]
    alloc = m["allocator_env"] if isinstance(m["allocator_env"], str) else " ".join(
        f"{k}={v}" for k, v in m["allocator_env"].items())
    lines = [f"convkit bench ({result['suite']} suite): {s['device']} ({dev}), {s['dtype']}, {s['threads']} threads, "
             f"torch {m['torch']}, allocator {alloc}",
             f"reference rates measured at the start of the run: gemm {reference(result, 'corr2d')}, "
             f"copy {reference(result, 'pool2d')}"]
    if s.get("cudnn_benchmark"):
        lines.append("GPU: cudnn.benchmark=True, TF32 off for every column but torch-tf32")
    return lines


# --------------------------------------------------------------------------- tables
def _cell_parts(row, b):
    c = row["backends"].get(b)
    if c is None:
        return None
    ratio = fmt_ratio(c.get("ratio_to_torch"))
    mem = fmt_bytes(c["mem_bytes"]) if "mem_bytes" in c else ""
    return fmt_time(c["time_s"]), fmt_rate(c["rate"]), f"{c['pct_peak']:.0f}%", ratio, mem


def format_table(rows, markdown=False) -> str:
    """One op and direction: a row per shape, a column per backend."""
    backends = table_backends(rows)
    if markdown:
        unit = rows[0]["unit"]
        out = ["| shape | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
        for r in rows:
            cells = []
            for b in backends:
                p = _cell_parts(r, b)
                if p is None:
                    cells.append("–")
                    continue
                t, rate, pct, ratio, mem = p
                cells.append(f"**{ratio}** {t}<br>{rate} {unit} ({pct.replace('%', ' %')})" + (f"<br>{mem}" if mem else ""))
            out.append(f"| {r['desc']} | " + " | ".join(cells) + " |")
        return "\n".join(out)
    label = max(len(r["desc"]) for r in rows) + 2
    widths = (9, 6, 5, 7)
    cw = sum(widths) + 2
    unit = rows[0]["unit"].split("/")[0][:2] + "/s"
    out = [" " * label + "".join(f"{b:>{cw}}" for b in backends),
           " " * label + f"{'time':>{widths[0] + 2}}{unit:>6}{'%pk':>5}{'xtorch':>7}" * len(backends)]
    for r in rows:
        cells = [_cell_parts(r, b) for b in backends]
        out.append(f"{r['desc']:<{label}}" + "".join(
            "  " + ("".join(f"{v:>{w}}" for v, w in zip(p, widths)) if p else f"{'-':>{cw - 2}}") for p in cells))
    if any("mem_bytes" in c for r in rows for c in r["backends"].values()):
        out += ["", f"{'peak extra memory of one call':<{label}}" + "".join(f"{b:>12}" for b in backends)]
        for r in rows:
            out.append(f"{r['desc']:<{label}}" + "".join(f"{(_cell_parts(r, b) or ['-'] * 5)[4] or '-':>12}"
                                                          for b in backends))
    return "\n".join(out)


def format_result(result) -> str:
    out = header(result)
    out.append("time: median per call; GF/s (corr2d) or GB/s (pool2d); %pk: % of the reference rate; "
               "xtorch: time / torch's time (<1 is faster); then the peak extra memory of one call")
    for op, d, rows in groups(result):
        out += ["", f"{op} {DIRECTIONS[d]}; % of {reference(result, op)}", format_table(rows)]
        skipped = sorted({b for r in rows for b in r.get("skipped", {}) if b != "naive"})
        for b in skipped:
            out.append(f"  {b} skipped: " + "; ".join(f"{r['shape']}: {r['skipped'][b]}" for r in rows
                                                       if b in r.get("skipped", {})))
    if result.get("scaling"):
        out += ["", "scaling study: corr2d forward, N=1, 'same' padding, stride 1, from "
                "H=32, C=32, k=3; time (memory) per backend", format_scaling(result)]
    return "\n".join(out)


def format_scaling(result, markdown=False) -> str:
    pts = result["scaling"]
    backends = table_backends(pts)
    lines = []
    if markdown:
        lines += ["| point | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
    for p in pts:
        cells = []
        for b in backends:
            c = p["backends"].get(b)
            cells.append("–" if c is None else f"{fmt_time(c['time_s'])} ({fmt_bytes(c.get('mem_bytes'))})"
                         if "mem_bytes" in c else fmt_time(c["time_s"]))
        if markdown:
            lines.append(f"| {p['axis']}={p['value']} | " + " | ".join(cells) + " |")
        else:
            lines.append(f"{p['axis'] + '=' + str(p['value']):<8}" + "".join(f"{c:>24}" for c in cells))
    if not markdown:
        lines.insert(0, " " * 8 + "".join(f"{b:>24}" for b in backends))
    return "\n".join(lines)


# --------------------------------------------------------------------------- comparing two runs
def _key(row):
    return row["op"], row["direction"], row["desc"]


def compare_rows(new, old):
    """[(new row, old row)] for the cases both runs measured."""
    old_rows = {_key(r): r for r in old["rows"]}
    return [(r, old_rows[_key(r)]) for r in new["rows"] if _key(r) in old_rows]


def format_compare(new, old, old_name="OLD") -> str:
    pairs = compare_rows(new, old)
    out = [f"compared with {old_name} ({old.get('created', '?')}, {old['machine'].get('convkit_commit') or '?'}): "
           f"speedup = old time / new time (>1: faster now); {len(pairs)} of {len(new['rows'])} cases in both"]
    for op in OPS:
        for d in DIRECTIONS:
            sel = [(n, o) for n, o in pairs if n["op"] == op and n["direction"] == d]
            if not sel:
                continue
            backends = [b for b in table_backends([n for n, _ in sel]) if any(b in o["backends"] for _, o in sel)]
            label = max(len(n["desc"]) for n, _ in sel) + 2
            out += ["", f"{op} {d}", " " * label + "".join(f"{b:>28}" for b in backends)]
            speedups = {b: [] for b in backends}
            for n, o in sel:
                cells = ""
                for b in backends:
                    if b in n["backends"] and b in o["backends"]:
                        tn, to = n["backends"][b]["time_s"], o["backends"][b]["time_s"]
                        speedups[b].append(to / tn)
                        cells += f"{fmt_time(to):>10} -> {fmt_time(tn):>9} {to / tn:5.2f}x"
                    else:
                        cells += f"{'-':>28}"
                out.append(f"{n['desc']:<{label}}{cells}")
            out.append(f"{'geometric mean':<{label}}" + "".join(
                f"{math.exp(sum(map(math.log, v)) / len(v)):27.2f}x" if v else f"{'-':>28}" for v in speedups.values()))
    return "\n".join(out)


# --------------------------------------------------------------------------- plots
def _plt():
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit("--plot needs matplotlib (pip install matplotlib; it is in requirements-dev.txt)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


COLORS = {"naive": "tab:gray", "unfold": "tab:orange", "compiled": "tab:blue", "torch": "tab:green",
          "torch-tf32": "tab:olive"}


def plot_speedup(result, op, path) -> str | None:
    plt = _plt()
    tables = [(d, rows) for o, d, rows in groups(result) if o == op]
    if not tables:
        return None
    fig, axes = plt.subplots(len(tables), 1, figsize=(max(8.0, 0.6 * max(len(r) for _, r in tables) + 3),
                                                      3.2 * len(tables)), squeeze=False)
    for ax, (d, rows) in zip(axes[:, 0], tables):
        backends = [b for b in table_backends(rows) if b != "torch"]
        width = 0.8 / max(len(backends), 1)
        for i, b in enumerate(backends):
            xs, ys = [], []
            for j, r in enumerate(rows):
                c = r["backends"].get(b)
                if c and c.get("ratio_to_torch"):
                    xs.append(j + (i - (len(backends) - 1) / 2) * width)
                    ys.append(1 / c["ratio_to_torch"])
            ax.bar(xs, ys, width, label=b, color=COLORS.get(b))
        ax.axhline(1, color="tab:green", lw=1.2, label="torch")
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)), [f"{r['shape']}\nN{r['n']}" for r in rows], fontsize=8)
        ax.set_ylabel("speedup vs torch")
        ax.set_title(f"{op} {DIRECTIONS[d].split(' (')[0]}: torch time / backend time (>1: faster than torch)",
                     fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    s = result["settings"]
    fig.suptitle(f"{s['device']} {s['dtype']}, {s['threads']} threads, torch {result['machine']['torch']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_scaling(result, path) -> str | None:
    plt = _plt()
    pts = result.get("scaling") or []
    axes_present = [a for a in SCALING_AXES if any(p["axis"] == a for p in pts)]
    if not axes_present:
        return None
    has_mem = any("mem_bytes" in c for p in pts for c in p["backends"].values())
    nrows = 2 if has_mem else 1
    fig, axes = plt.subplots(nrows, len(axes_present), figsize=(4.2 * len(axes_present), 3.4 * nrows), squeeze=False)
    backends = table_backends(pts)
    for j, a in enumerate(axes_present):
        sel = [p for p in pts if p["axis"] == a]
        for b in backends:
            xs = [p["value"] for p in sel if b in p["backends"]]
            cs = [p["backends"][b] for p in sel if b in p["backends"]]
            kw = dict(marker="o", ms=4, label=b, color=COLORS.get(b))
            axes[0, j].plot(xs, [c["time_s"] for c in cs], **kw)
            if has_mem:
                mx = [(x, c["mem_bytes"] / 2**20) for x, c in zip(xs, cs) if c.get("mem_bytes")]
                axes[1, j].plot([x for x, _ in mx], [m for _, m in mx], **kw)
        values = sorted({p["value"] for p in sel})
        for i in range(nrows):
            ax = axes[i, j]
            ax.set_xscale("log", base=2)
            ax.set_xticks(values, [str(v) for v in values])
            ax.minorticks_off()
            ax.set_yscale("log")
            ax.grid(which="both", alpha=0.3)
            ax.set_xlabel(SCALING_AXES[a])
        axes[0, j].set_ylabel("time per call (s)")
        if has_mem:
            axes[1, j].set_ylabel("peak extra memory (MiB)")
        axes[0, j].set_title(f"vs {SCALING_AXES[a]}", fontsize=10)
    axes[0, 0].legend(fontsize=8)
    s = result["settings"]
    fig.suptitle(f"corr2d forward scaling, N=1, 'same' padding, from H=32, C=32, k=3; {s['device']} {s['dtype']}, "
                 f"{s['threads']} threads", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot(result, outdir) -> list[str]:
    """Every plot the result has data for, as PNGs in outdir: speedup_<op>.png, scaling.png."""
    os.makedirs(outdir, exist_ok=True)
    paths = [plot_speedup(result, op, os.path.join(outdir, f"speedup_{op}.png")) for op in OPS]
    paths.append(plot_scaling(result, os.path.join(outdir, "scaling.png")))
    return [p for p in paths if p]
