"""python -m convkit info / bench, and the examples, run as a user would."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_info_json():
    r = run("-m", "convkit", "info", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["torch"] and d["threads"] >= 1 and "unfold" in d["backends"]["cpu"]
    assert isinstance(d["compiled"]["built"], bool)


def test_bench_writes_json_with_a_torch_row_per_shape(tmp_path):
    out = tmp_path / "b.json"
    r = run("-m", "convkit", "bench", "--backends", "unfold", "--min-run-time", "0.01", "--json", str(out))
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["rows"]
    assert rows and all(set(row["times_s"]) == {"unfold", "torch"} for row in rows)
    assert all(t > 0 for row in rows for t in row["times_s"].values())


@pytest.mark.parametrize("script", ["quickstart.py"])
def test_examples_run(script):
    r = run(os.path.join("examples", script))
    assert r.returncode == 0, r.stderr
    assert "[[19.0, 25.0], [37.0, 43.0]]" in r.stdout
