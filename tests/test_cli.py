"""python -m convkit info and the examples, run as a user would (bench: tests/test_bench.py)."""
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


@pytest.mark.parametrize("script", ["quickstart.py"])
def test_examples_run(script):
    r = run(os.path.join("examples", script))
    assert r.returncode == 0, r.stderr
    assert "[[19.0, 25.0], [37.0, 43.0]]" in r.stdout
