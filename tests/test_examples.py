"""The examples run as scripts and print the book's values; convkit models train under DDP and export.

Each example runs in a subprocess (OMP_NUM_THREADS=1) with small arguments; the checks read its output.
"""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

import convkit
from conftest import BACKENDS, COMPILED_SKIP

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, timeout: float = 300) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def value(out: str, label: str):
    """The Python literal printed after `label =` on the first line that starts with label."""
    for line in out.splitlines():
        if line.startswith(label):
            rest = line[len(label):].lstrip()
            assert rest.startswith("="), line
            return ast.literal_eval(rest[1:].split("  ")[0].strip())
    raise AssertionError(f"no line starting with {label!r} in:\n{out}")


def number(out: str, pattern: str) -> float:
    m = re.search(pattern, out)
    assert m, f"{pattern!r} not found in:\n{out}"
    return float(m.group(1))


# --------------------------------------------------------------------------- d2l_tour.py
@pytest.mark.parametrize("backend", BACKENDS)
def test_d2l_tour_prints_the_books_values(backend):
    out = run_example("d2l_tour.py", "--backend", backend)
    assert value(out, "corr2d(X, K)") == [[19, 25], [37, 43]]
    assert "equals corr2d(X, weight) + bias: True" in out
    assert value(out, "corr2d(X, [[1, -1]])") == [[0, 1, 0, 0, 0, -1, 0]] * 6
    assert value(out, "corr2d(X.t(), [[1, -1]])") == [[0] * 5] * 8
    # 7.2.4 on every backend: the same start, the same ten steps, close to the true kernel
    learned = {b: value(out, f"learned kernel [{b}]") for b in convkit.available_backends("cpu")}
    for kernel in learned.values():
        assert abs(kernel[0][0] - 1) < 0.1 and abs(kernel[0][1] + 1) < 0.1, learned
    assert number(out, r"largest difference between backends: (\S+)") < 1e-4
    assert re.findall(r"-> output shape (\(\d+, \d+\))", out) == ["(8, 8)", "(8, 8)", "(4, 4)", "(2, 2)"]
    assert value(out, "corr2d_multi_in(X, K)") == [[56, 72], [104, 120]]
    assert value(out, "corr2d_multi_in_out(X, K)") == [[[56, 72], [104, 120]], [[76, 100], [148, 172]],
                                                       [[96, 128], [192, 224]]]
    assert re.search(r"sum \|matmul - corr2d\| = \S+ +\(book: < 1e-6\): True", out)
    assert value(out, "pool2d(X, (2, 2))") == [[4, 5], [7, 8]]
    assert value(out, "pool2d(X, (2, 2), 'avg')") == [[2, 3], [5, 6]]
    assert value(out, "MaxPool2d(3)") == [[[[10]]]]
    assert value(out, "MaxPool2d(3, padding=1, stride=2)") == [[[[5, 7], [13, 15]]]]
    assert value(out, "MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))") == [[[[5, 7], [13, 15]]]]
    multi = out.split("7.5.3")[1]
    assert value(multi, "MaxPool2d(3, padding=1, stride=2)") == [[[[5, 7], [13, 15]], [[6, 8], [14, 16]]]]
    summary = re.findall(r"^(\w+) output shape: torch.Size\((\[.*\])\)$", out, re.M)
    assert [(name, ast.literal_eval(shape)) for name, shape in summary] == [
        ("Conv2d", [1, 6, 28, 28]), ("Sigmoid", [1, 6, 28, 28]), ("AvgPool2d", [1, 6, 14, 14]),
        ("Conv2d", [1, 16, 10, 10]), ("Sigmoid", [1, 16, 10, 10]), ("AvgPool2d", [1, 16, 5, 5]),
        ("Flatten", [1, 400]), ("Linear", [1, 120]), ("Sigmoid", [1, 120]), ("Linear", [1, 84]),
        ("Sigmoid", [1, 84]), ("Linear", [1, 10])]


@pytest.mark.parametrize("backend", ["auto", "naive"])
def test_d2l_tour_true_convolution(backend):
    out = run_example("d2l_tour.py", "--true-convolution", "--backend", backend)
    assert value(out, "corr2d(X, K)") == [[19, 25], [37, 43]]
    flipped = value(out, "corr2d(X, K.flip(-2, -1))")
    assert flipped == value(out, "direct convolution sum (valid)") == [[5, 11], [23, 29]]
    full = value(out, "flipped, padded by k - 1 (full)")
    assert full == value(out, "direct convolution sum (full)")
    assert full[0] == [0, 0, 1, 2] and full[-1] == [12, 32, 37, 24]
    assert number(out, r"max \|corr2d\(X, flip\(K\)\) - convolution\| = (\S+)") < 1e-12
    kernel = value(out, "learned convolution kernel")
    assert abs(kernel[0][0] + 1) < 0.05 and abs(kernel[0][1] - 1) < 0.05  # the flipped edge detector


# --------------------------------------------------------------------------- lenet_digits.py
def test_lenet_digits_relu_trains_like_torch(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    out = run_example("lenet_digits.py", "--relu", "--epochs", "5", "--compare-torch", "--plot", str(png))
    assert "digits: 1347 train / 450 test images of (1, 28, 28)" in out
    epochs = re.findall(r"^epoch +(\d+) (convkit|torch\.nn) +loss (\S+)", out, re.M)
    assert [(int(e), name) for e, name, _ in epochs] == [(e, n) for e in range(1, 6) for n in ("convkit", "torch.nn")]
    # identical initial weights and batches: the first epoch's mean loss agrees closely
    loss_convkit, loss_torch = float(epochs[0][2]), float(epochs[1][2])
    assert abs(loss_convkit - loss_torch) <= 0.01 * loss_torch
    acc_convkit = number(out, r"final test accuracy: convkit (\S+) %")
    acc_torch = number(out, r"final test accuracy: .*torch\.nn (\S+) %")
    assert acc_convkit >= 95.0 and acc_torch >= 95.0, out
    assert number(out, r"test accuracy difference convkit - torch\.nn: (\S+) points") == pytest.approx(
        acc_convkit - acc_torch, abs=0.011)
    assert number(out, r"epoch time ratio convkit / torch\.nn: (\S+)") > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- dropin.py
def test_dropin_resnet_equal_state_dict_and_timing():
    out = run_example("dropin.py", "--size", "32", "--batch", "2", "--min-run-time", "0.05")
    assert "replaced 20 Conv2d and 1 MaxPool2d (0 torch.nn.Conv2d left)" in out
    assert number(out, r"max \|output difference\| (\S+),") < 1e-12
    assert number(out, r"max \|gradient difference\| (\S+) over 62 parameters") < 1e-12
    assert "state_dict: 122 identical keys" in out
    for task in ("inference", "training step"):
        assert number(out, task + r" +torch\.nn .* ratio convkit / torch\.nn (\S+)") > 0


# --------------------------------------------------------------------------- im2col_vs_direct.py
def test_im2col_vs_direct_sizes_errors_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "im2col.png"
    out = run_example("im2col_vs_direct.py", "--n", "2", "--c", "4", "--o", "6", "--h", "10", "--w", "12",
                      "--k", "3", "--stride", "2", "--padding", "1", "--min-run-time", "0.05", "--plot", str(png))
    # Ho = (10 + 2 - 3) // 2 + 1 = 5, Wo = (12 + 2 - 3) // 2 + 1 = 6: columns (2, 4*3*3, 30) vs input 2*4*10*12
    assert "shape (N, C*kh*kw, Ho*Wo) = (2, 36, 30)" in out
    assert f"({2 * 36 * 30 / (2 * 4 * 10 * 12):.1f}x)" in out
    timed = re.findall(r"^  (\w+) +\S+ ms +\S+ GFLOP/s +max relative error vs F.conv2d (\S+)$", out, re.M)
    assert [b for b, _ in timed] == convkit.available_backends("cpu")
    assert all(float(err) < 1e-5 for _, err in timed), timed
    assert ("convkit.explain:" in out) == hasattr(convkit, "explain")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    out = run_example("im2col_vs_direct.py", "--c", "2", "--o", "2", "--h", "8", "--w", "8", "--backward",
                      "--min-run-time", "0.02", "--naive-max-positions", "10")
    assert "naive     skipped: 64 output positions x 3 (backward) > --naive-max-positions 10" in out
    assert "forward + backward" in out and not re.search(r"^  naive +\S+ ms", out, re.M)


# --------------------------------------------------------------------------- DistributedDataParallel
DDP_STEPS, DDP_BATCH, DDP_WORLD = 3, 8, 2


def _small_cnn(backend: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        convkit.nn.Conv2d(1, 4, 3, padding=1, backend=backend), nn.ReLU(), convkit.nn.MaxPool2d(2, backend=backend),
        convkit.nn.Conv2d(4, 8, 3, backend=backend), nn.Tanh(), convkit.nn.AvgPool2d(2, backend=backend),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 3)).double()


def _ddp_data():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(DDP_STEPS, DDP_BATCH, 1, 12, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (DDP_STEPS, DDP_BATCH), generator=g)
    return X, y


def _train(model: nn.Module, X, y, params) -> None:
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    for step in range(X.shape[0]):
        opt.zero_grad()
        F.cross_entropy(model(X[step]), y[step]).backward()
        opt.step()


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = _small_cnn("compiled")
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        X, y = _ddp_data()
        per = DDP_BATCH // world
        _train(ddp, X[:, rank * per:(rank + 1) * per], y[:, rank * per:(rank + 1) * per], ddp.parameters())
        torch.save(model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
    # torch 2.13's gloo can abort at interpreter teardown ("terminate called without an active
    # exception", SIGABRT) about one run in ten, with plain torch.nn layers too (measured: 3 of 30
    # runs with no convkit imported; 0 of 40 with this exit). Exit without the C++ static
    # destructors once the work is saved; a failure above still raises and reaches mp.spawn.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@COMPILED_SKIP
def test_ddp_two_processes_equal_single_process_on_combined_batch(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(_ddp_worker, args=(DDP_WORLD, str(tmp_path / "init"), str(tmp_path)), nprocs=DDP_WORLD, join=True)
    single = _small_cnn("compiled")
    start = {k: v.clone() for k, v in single.state_dict().items()}
    X, y = _ddp_data()
    _train(single, X, y, single.parameters())  # the whole batch in one process: the mean over all 8 samples
    for rank in range(DDP_WORLD):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        assert state.keys() == start.keys()
        for name, p in single.state_dict().items():
            assert not torch.equal(p, start[name]), f"{name} did not move"
            torch.testing.assert_close(state[name], p, rtol=1e-10, atol=1e-12, msg=lambda m: f"rank {rank} {name}: {m}")


# --------------------------------------------------------------------------- torch.export
def _export_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 5)).eval()


@pytest.mark.parametrize("backend", [pytest.param("compiled", marks=COMPILED_SKIP), "unfold"])
def test_export_converted_model(backend, tmp_path):
    model = _export_model()
    converted = convkit.convert(model, backend=backend)
    x = torch.randn(2, 3, 16, 16)
    ep = torch.export.export(converted, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any(t.startswith(("aten.convolution", "aten.conv2d", "aten.max_pool2d", "aten.avg_pool2d"))
                   for t in targets), targets  # convkit's computation, not torch's, was exported
    if backend == "compiled":
        assert {"convkit.corr2d.default", "convkit.pool2d.default"} <= targets
    x2 = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = converted(x2)
        torch.testing.assert_close(ep.module()(x2), expected, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(expected, model(x2), rtol=1e-5, atol=1e-5)
        torch.export.save(ep, tmp_path / "model.pt2")
        loaded = torch.export.load(tmp_path / "model.pt2")
        torch.testing.assert_close(loaded.module()(x2), expected, rtol=1e-6, atol=1e-7)


@COMPILED_SKIP
def test_export_compiled_dynamic_batch():
    converted = convkit.convert(_export_model(), backend="compiled")
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(converted, (torch.randn(2, 3, 16, 16),), dynamic_shapes={"input": {0: batch}})
    for n in (1, 5):
        x = torch.randn(n, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(ep.module()(x), converted(x), rtol=1e-6, atol=1e-7)
