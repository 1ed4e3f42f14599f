"""Markdown table from results/cpu_backends_n1_n8.json and results/machine_peaks.json: time, ratio to torch,
GFLOP/s (conv) or GB/s (pool, bytes read + written) and % of the measured sgemm rate / copy bandwidth.

    python benchmarks/summarize.py > benchmarks/results/cpu_backends_n1_n8_table.md
"""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from convkit.bench import SHAPES_BY_ID
d = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cpu_backends_n1_n8.json")))
pk = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "machine_peaks.json")))
peak, bw = pk["sgemm_gflops"], pk["copy_gbs"]
print(f"| shape | N | dir | compiled ms | torch ms | ratio | unfold ratio | compiled GFLOP/s or GB/s | % of sgemm peak ({peak:.0f}) or copy bw ({bw:.1f}) |")
print("|---|---|---|---|---|---|---|---|---|")
slower = []
for r in d["rows"]:
    s = SHAPES_BY_ID[r["shape"]].with_n(r["n"]); m = r["median_s"]; t = m["compiled"]
    if s.op == "corr2d":
        rate = s.flops() * (3 if r["direction"] == "fwdbwd" else 1) / t / 1e9; pct = 100 * rate / peak; unit = "GFLOP/s"
    else:
        rate = s.bytes() * (2 if r["direction"] == "fwdbwd" else 1) / t / 1e9; pct = 100 * rate / bw; unit = "GB/s"
    u = r["ratio_to_torch"].get("unfold")
    if "unfold" in m and m["compiled"] > m["unfold"]: slower.append((r["shape"], r["n"], r["direction"], round(t*1e3,3), round(m["unfold"]*1e3,3)))
    print(f"| {r['shape']} | {r['n']} | {r['direction']} | {t*1e3:.3f} | {m['torch']*1e3:.3f} | {r['ratio_to_torch']['compiled']:.2f} | {u:.2f} | {rate:.1f} {unit} | {pct:.0f} % |" if u else
          f"| {r['shape']} | {r['n']} | {r['direction']} | {t*1e3:.3f} | {m['torch']*1e3:.3f} | {r['ratio_to_torch']['compiled']:.2f} | – | {rate:.1f} {unit} | {pct:.0f} % |")
print("\ncompiled slower than unfold:", slower)
