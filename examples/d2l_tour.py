"""d2l's CNN chapter (7.2-7.6) step by step through convkit, printing the book's values.

    python examples/d2l_tour.py                       # every step, backend="auto"
    python examples/d2l_tour.py --backend naive       # the same on the book's loops
    python examples/d2l_tour.py --true-convolution    # convolution = cross-correlation with the flipped kernel

Each section names the book's section and what the book prints; the values below it are computed here.
The kernel-learning step (7.2.4) runs on every backend that works here, whatever --backend says.
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

import convkit


def fmt(t: torch.Tensor):
    """A tensor as nested lists of rounded floats: stable, readable output."""
    t = t.detach().double()
    return torch.round(t, decimals=4).tolist() if t.dim() else round(t.item(), 4)


def section(title: str) -> None:
    print(f"\n== {title}")


def edge_image() -> torch.Tensor:
    """The book's 6x8 image: ones, with a black (zero) band in columns 2..5."""
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    return X


# --------------------------------------------------------------------------- 7.2 cross-correlation
def cross_correlation(backend: str) -> None:
    section("7.2.1 cross-correlation (book: [[19, 25], [37, 43]])")
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.arange(4.0).reshape(2, 2)
    print("corr2d(X, K) =", fmt(convkit.corr2d(X, K, backend=backend)))

    section("7.2.2 the Corr2d layer (the book's Conv2D: (kh, kw) weight + scalar bias)")
    torch.manual_seed(0)
    layer = convkit.nn.Corr2d((2, 2), backend=backend)
    with torch.no_grad():
        layer.bias.fill_(1.0)
    print(layer)
    y = layer(X)
    print("Corr2d(X) =", fmt(y))
    print("equals corr2d(X, weight) + bias:", torch.allclose(y, convkit.corr2d(X, layer.weight, backend=backend) + 1))

    section("7.2.3 edge detection (book: 1 at the white->black edge, -1 at black->white; 0 on the transpose)")
    X = edge_image()
    K = torch.tensor([[1.0, -1.0]])
    print("X =", fmt(X))
    Y = convkit.corr2d(X, K, backend=backend)
    print("corr2d(X, [[1, -1]]) =", fmt(Y))
    print("corr2d(X.t(), [[1, -1]]) =", fmt(convkit.corr2d(X.t(), K, backend=backend)))


def learn_kernel(backend: str, seed: int = 0, iterations: int = 10, lr: float = 3e-2) -> torch.Tensor:
    """7.2.4: learn K from (X, Y) with a bias-free (1, 2) Conv2d, squared loss, plain gradient descent."""
    X = edge_image().reshape(1, 1, 6, 8)
    Y = convkit.corr2d(X, torch.tensor([[[[1.0, -1.0]]]]), backend="torch")  # the target, computed by torch
    torch.manual_seed(seed)  # the same initial kernel on every backend
    conv2d = convkit.nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False, backend=backend)
    for i in range(iterations):
        loss = (conv2d(X) - Y) ** 2
        conv2d.zero_grad()
        loss.sum().backward()
        with torch.no_grad():
            conv2d.weight -= lr * conv2d.weight.grad
        if (i + 1) % 2 == 0:
            print(f"  [{backend}] epoch {i + 1}, loss {loss.sum().item():.3f}")
    return conv2d.weight.detach().reshape(1, 2)


def learning(args) -> None:
    section("7.2.4 learning the kernel [[1, -1]] (10 iterations, lr 3e-2, squared loss), on every backend")
    learned = {}
    for backend in convkit.available_backends("cpu"):
        learned[backend] = learn_kernel(backend, seed=args.seed)
    for backend, w in learned.items():
        print(f"learned kernel [{backend}] =", fmt(w))
    ref = learned["torch"]
    spread = max((w - ref).abs().max().item() for w in learned.values())
    print(f"largest difference between backends: {spread:.2e}")


# --------------------------------------------------------------------------- 7.3 padding and stride
def padding_and_stride(backend: str) -> None:
    section("7.3 padding and stride on an 8x8 input (book: (8, 8), (8, 8), (4, 4), (2, 2))")
    torch.manual_seed(0)
    X = torch.rand(size=(8, 8))

    def comp_conv2d(conv2d, X):  # the book's helper: add batch and channel dimensions, then drop them
        X = X.reshape((1, 1) + X.shape)
        Y = conv2d(X)
        return Y.reshape(Y.shape[2:])

    cases = [
        ("kernel_size=3, padding=1", dict(kernel_size=3, padding=1)),
        ("kernel_size=(5, 3), padding=(2, 1)", dict(kernel_size=(5, 3), padding=(2, 1))),
        ("kernel_size=3, padding=1, stride=2", dict(kernel_size=3, padding=1, stride=2)),
        ("kernel_size=(3, 5), padding=(0, 1), stride=(3, 4)", dict(kernel_size=(3, 5), padding=(0, 1), stride=(3, 4))),
    ]
    for label, kw in cases:
        conv2d = convkit.nn.Conv2d(1, 1, backend=backend, **kw)
        print(f"Conv2d(1, 1, {label}) -> output shape {tuple(comp_conv2d(conv2d, X).shape)}")


# --------------------------------------------------------------------------- 7.4 channels
def channels(backend: str) -> None:
    section("7.4.1 multiple input channels (book: [[56, 72], [104, 120]])")
    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    print("corr2d_multi_in(X, K) =", fmt(convkit.corr2d(X, K, backend=backend)))

    section("7.4.2 multiple output channels: K = stack(K, K+1, K+2) "
            "(book: [[56, 72], [104, 120]], [[76, 100], [148, 172]], [[96, 128], [192, 224]])")
    K3 = torch.stack((K, K + 1, K + 2), 0)
    print("K.shape =", tuple(K3.shape))
    print("corr2d_multi_in_out(X, K) =", fmt(convkit.corr2d(X, K3, backend=backend)))

    section("7.4.3 a 1x1 convolution is a matrix multiply over channels")
    torch.manual_seed(0)
    X = torch.normal(0, 1, (3, 3, 3))
    K = torch.normal(0, 1, (2, 3, 1, 1))
    c_i, h, w = X.shape
    Y1 = (K.reshape(K.shape[0], c_i) @ X.reshape(c_i, h * w)).reshape(-1, h, w)
    Y2 = convkit.corr2d(X, K, backend=backend)
    err = (Y1 - Y2).abs().sum().item()
    print(f"sum |matmul - corr2d| = {err:.2e}  (book: < 1e-6): {err < 1e-6}")


# --------------------------------------------------------------------------- 7.5 pooling
def pooling(backend: str) -> None:
    section("7.5.1 pool2d on arange(9) 3x3 (book: max [[4, 5], [7, 8]], avg [[2, 3], [5, 6]])")
    X = torch.arange(9.0).reshape(3, 3)
    print("pool2d(X, (2, 2)) =", fmt(convkit.pool2d(X, (2, 2), backend=backend)))
    print("pool2d(X, (2, 2), 'avg') =", fmt(convkit.pool2d(X, (2, 2), mode="avg", backend=backend)))

    section("7.5.2 padding and stride on arange(16) 4x4 (book: [[[[10]]]], [[5, 7], [13, 15]] twice)")
    X = torch.arange(16.0).reshape((1, 1, 4, 4))
    print("X =", fmt(X))
    print("MaxPool2d(3) =", fmt(convkit.nn.MaxPool2d(3, backend=backend)(X)))
    print("MaxPool2d(3, padding=1, stride=2) =", fmt(convkit.nn.MaxPool2d(3, padding=1, stride=2, backend=backend)(X)))
    pool = convkit.nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1), backend=backend)
    print("MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1)) =", fmt(pool(X)))

    section("7.5.3 multiple channels: cat(X, X + 1) (book: [[5, 7], [13, 15]] and [[6, 8], [14, 16]])")
    X = torch.cat((X, X + 1), 1)
    print("MaxPool2d(3, padding=1, stride=2) =", fmt(convkit.nn.MaxPool2d(3, padding=1, stride=2, backend=backend)(X)))


# --------------------------------------------------------------------------- 7.6 LeNet
def lenet_summary(backend: str) -> None:
    section("7.6 LeNet layer summary (book: 6x28x28 -> 6x14x14 -> 16x10x10 -> 16x5x5 -> 400 -> 120 -> 84 -> 10)")
    net = nn.Sequential(
        convkit.nn.Conv2d(1, 6, kernel_size=5, padding=2, backend=backend), nn.Sigmoid(),
        convkit.nn.AvgPool2d(kernel_size=2, stride=2, backend=backend),
        convkit.nn.Conv2d(6, 16, kernel_size=5, backend=backend), nn.Sigmoid(),
        convkit.nn.AvgPool2d(kernel_size=2, stride=2, backend=backend),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))
    X = torch.rand(size=(1, 1, 28, 28), dtype=torch.float32)
    for layer in net:
        X = layer(X)
        print(layer.__class__.__name__, "output shape:", X.shape)


# --------------------------------------------------------------------------- true convolution
def convolve_direct(X: torch.Tensor, K: torch.Tensor, full: bool = False) -> torch.Tensor:
    """The convolution sum itself, (X * K)[i, j] = sum_{a, b} X[i - a, j - b] K[a, b], as plain loops.

    "valid" keeps the outputs where the flipped kernel lies inside X; full=True keeps every output
    where it overlaps X at all (X read as zero outside), (H + kh - 1) x (W + kw - 1).
    """
    h, w = X.shape
    kh, kw = K.shape
    off_i, off_j = (0, 0) if full else (kh - 1, kw - 1)
    Y = torch.zeros((h + kh - 1 - 2 * off_i, w + kw - 1 - 2 * off_j), dtype=torch.float64)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            s = 0.0
            for a in range(kh):
                for b in range(kw):
                    r, c = i + off_i - a, j + off_j - b
                    if 0 <= r < h and 0 <= c < w:
                        s += float(X[r, c]) * float(K[a, b])
            Y[i, j] = s
    return Y


def true_convolution(args) -> None:
    backend = args.backend
    section("true convolution = cross-correlation with the kernel flipped in both axes")
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.arange(4.0).reshape(2, 2)
    print("K =", fmt(K), "  K.flip(-2, -1) =", fmt(K.flip(-2, -1)))
    print("corr2d(X, K)                    =", fmt(convkit.corr2d(X, K, backend=backend)))
    conv = convkit.corr2d(X, K.flip(-2, -1), backend=backend)
    print("corr2d(X, K.flip(-2, -1))       =", fmt(conv))
    print("direct convolution sum (valid)  =", fmt(convolve_direct(X, K)))

    full = convkit.corr2d(X, K.flip(-2, -1), padding=(K.shape[0] - 1, K.shape[1] - 1), backend=backend)
    print("flipped, padded by k - 1 (full) =", fmt(full))
    print("direct convolution sum (full)   =", fmt(convolve_direct(X, K, full=True)))

    torch.manual_seed(args.seed)
    worst = 0.0
    for _ in range(20):  # random shapes: the identity holds in general, not just for this X and K
        h, w = torch.randint(3, 9, (2,)).tolist()
        kh, kw = torch.randint(1, 4, (2,)).tolist()
        Xr, Kr = torch.randn(h, w, dtype=torch.float64), torch.randn(kh, kw, dtype=torch.float64)
        for full_mode in (False, True):
            pad = (kh - 1, kw - 1) if full_mode else 0
            got = convkit.corr2d(Xr, Kr.flip(-2, -1), padding=pad, backend=backend)
            worst = max(worst, (got - convolve_direct(Xr, Kr, full=full_mode)).abs().max().item())
    print(f"20 random shapes (valid and full), float64: max |corr2d(X, flip(K)) - convolution| = {worst:.1e}")

    section("learned kernels are interchangeable: learning the edge detector as a true convolution")
    X = edge_image().reshape(1, 1, 6, 8)
    Y = convkit.corr2d(X, torch.tensor([[[[1.0, -1.0]]]]), backend="torch")
    torch.manual_seed(args.seed)
    K = torch.rand(1, 1, 1, 2, requires_grad=True)
    for _ in range(30):
        loss = ((convkit.corr2d(X, K.flip(-2, -1), backend=backend) - Y) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            K -= 3e-2 * K.grad
            K.grad = None
    print("learned convolution kernel =", fmt(K.reshape(1, 2)), f"  (loss {loss.item():.4f}; the flipped [[1, -1]])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="auto", choices=["auto", "naive", "unfold", "compiled", "torch"])
    parser.add_argument("--true-convolution", action="store_true",
                        help="show that convolution is cross-correlation with the flipped kernel")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kernels and inputs")
    args = parser.parse_args()
    print(f"convkit {convkit.__version__}, backend={args.backend!r} "
          f"(resolves to {convkit.functional.resolve_backend(args.backend, torch.device('cpu'), torch.float32)!r})")
    if args.true_convolution:
        true_convolution(args)
        return
    cross_correlation(args.backend)
    learning(args)
    padding_and_stride(args.backend)
    channels(args.backend)
    pooling(args.backend)
    lenet_summary(args.backend)


if __name__ == "__main__":
    main()
